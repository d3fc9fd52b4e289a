package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxTokenForm bounds the body of a POST to the token endpoint.
const maxTokenForm = 64 << 10

// TokenHandler serves the token endpoint.
func (t *tokenAuthorizer) TokenHandler() http.Handler { return http.HandlerFunc(t.serveToken) }

// tokenResponse is the endpoint's answer; token and access_token are the
// same, for clients of either the token spec or its OAuth 2 variant.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// tokenRequest is what a GET's query or a POST's form asks for.
type tokenRequest struct {
	service  string
	scopes   []string
	user     string
	password string
	hasCreds bool
	account  string // GET only: the user the client acts as
}

// serveToken issues a token for what the client asks (GET per the Docker
// token spec, with optional basic auth; POST per its OAuth 2 variant with
// grant_type=password), cut down to what the rules allow. No refresh
// tokens are issued, so clients fall back to sending credentials again.
func (t *tokenAuthorizer) serveToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	oauth := false
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		req.service = q.Get("service")
		req.scopes = q["scope"]
		req.account = q.Get("account")
		req.user, req.password, req.hasCreds = r.BasicAuth()
	case http.MethodPost:
		oauth = true
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			tokenError(w, oauth, http.StatusBadRequest, "invalid_request", "unreadable form: "+err.Error())
			return
		}
		req.service = r.PostForm.Get("service")
		req.scopes = r.PostForm["scope"]
		switch gt := r.PostForm.Get("grant_type"); gt {
		case "password":
			req.user, req.password, req.hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		case "":
			tokenError(w, oauth, http.StatusBadRequest, "invalid_request", "grant_type missing")
			return
		default:
			tokenError(w, oauth, http.StatusBadRequest, "unsupported_grant_type",
				fmt.Sprintf("grant_type %q is not supported (only password)", gt))
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, oauth, http.StatusMethodNotAllowed, "invalid_request", "method "+r.Method+" not allowed")
		return
	}

	if req.service != "" && req.service != t.service {
		tokenError(w, oauth, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("unknown service %q (this is %q)", req.service, t.service))
		return
	}
	want, err := parseScopes(req.scopes)
	if err != nil {
		tokenError(w, oauth, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	user := ""
	if req.hasCreds {
		ok, err := t.checkPassword(req.user, req.password)
		if err != nil {
			t.log.Error("token endpoint: credentials cannot be checked", "user", req.user, "err", err)
			tokenError(w, oauth, http.StatusInternalServerError, "server_error", "credentials cannot be checked")
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", "Basic realm="+quote(t.service))
			tokenError(w, oauth, http.StatusUnauthorized, "invalid_grant", "invalid username or password")
			return
		}
		user = req.user
	}
	if req.account != "" && user != "" && req.account != user {
		tokenError(w, oauth, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("account %q does not match the credentials of %q", req.account, user))
		return
	}

	token, issued, err := t.issue(user, t.acl.grant(user, want))
	if err != nil {
		t.log.Error("token endpoint: token cannot be signed", "user", user, "err", err)
		tokenError(w, oauth, http.StatusInternalServerError, "server_error", "token cannot be signed")
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		Token:       token,
		AccessToken: token,
		ExpiresIn:   int(t.ttl / time.Second),
		IssuedAt:    issued.UTC().Format(time.RFC3339),
	})
}

// checkPassword verifies credentials against the htpasswd file, if any.
func (t *tokenAuthorizer) checkPassword(user, password string) (bool, error) {
	if t.users == nil || user == "" {
		return false, nil
	}
	return t.users.verify(user, password)
}

// parseScopes reads scope parameters, each holding one or more
// space-separated scopes of the form type:name:action[,action...]. The
// name may not contain a colon; unknown types are kept (and granted
// nothing).
func parseScopes(params []string) ([]Access, error) {
	var want []Access
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			typ, rest, ok1 := strings.Cut(s, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok1 || i < 0 || typ == "" {
				return nil, fmt.Errorf("scope %q: want type:name:actions", s)
			}
			name, actions := rest[:i], rest[i+1:]
			if name == "" || strings.Contains(name, ":") {
				return nil, fmt.Errorf("scope %q: invalid resource name %q", s, name)
			}
			a := Access{Type: typ, Name: name}
			for act := range strings.SplitSeq(actions, ",") {
				if act != "" {
					a.Actions = append(a.Actions, act)
				}
			}
			want = append(want, a)
		}
	}
	return want, nil
}

// tokenError answers a failed token request: in the registry's error
// format for GET, in the OAuth 2 one (RFC 6749 section 5.2) for POST.
func tokenError(w http.ResponseWriter, oauth bool, status int, oauthCode, msg string) {
	if oauth {
		writeJSON(w, status, map[string]string{"error": oauthCode, "error_description": msg})
		return
	}
	code := "UNAUTHORIZED"
	switch status {
	case http.StatusBadRequest:
		code = "INVALID_REQUEST"
	case http.StatusMethodNotAllowed:
		code = "UNSUPPORTED"
	case http.StatusInternalServerError:
		code = "UNKNOWN"
	}
	writeJSON(w, status, map[string][]map[string]string{
		"errors": {{"code": code, "message": msg}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
