# Built with -f build/app.Dockerfile: the Dockerfile lives outside the
# context root, and its own build/app.Dockerfile.dockerignore replaces the
# context's .dockerignore.
FROM berth-build-base
COPY app /app
CMD find /app | sort
