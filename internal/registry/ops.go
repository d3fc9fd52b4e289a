package registry

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// metrics are the registry's Prometheus collectors, in a registry of their
// own so that several servers can live in one process (tests).
type metrics struct {
	handler     http.Handler
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	sent        *prometheus.CounterVec
	blobsStored prometheus.Counter
	gcRuns      prometheus.Counter
	gcDeleted   prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_registry_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_registry_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method", "route"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_registry_http_response_bytes_total", Help: "Response body bytes by route.",
		}, []string{"route"}),
		blobsStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_registry_blobs_stored_total", Help: "Blobs written to storage.",
		}),
		gcRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_registry_gc_runs_total", Help: "Garbage collections run.",
		}),
		gcDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_registry_gc_blobs_deleted_total", Help: "Blobs deleted by garbage collection.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.sent, m.blobsStored, m.gcRuns, m.gcDeleted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(method, route string, status int, d time.Duration, bytes int64) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
	m.sent.WithLabelValues(route).Add(float64(bytes))
}

// limiter is a token bucket per client IP; idle buckets are dropped.
type limiter struct {
	mu      sync.Mutex
	rate    rate.Limit
	burst   int
	clients map[string]*client
	swept   time.Time
}

type client struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	if burst <= 0 {
		burst = max(1, int(perSecond))
	}
	return &limiter{rate: rate.Limit(perSecond), burst: burst, clients: map[string]*client{}, swept: time.Now()}
}

func (l *limiter) allow(ip string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, c := range l.clients {
			if now.Sub(c.seen) > time.Minute {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	c, ok := l.clients[ip]
	if !ok {
		c = &client{l: rate.NewLimiter(l.rate, l.burst)}
		l.clients[ip] = c
	}
	c.seen = now
	return c.l.AllowN(now, 1)
}
