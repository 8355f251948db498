# fleetsim's container image: the static fleetsim binary and nothing else.
#
# No base image is pulled, so building it needs no container registry.
# The binary is built first, outside the image, with the Go toolchain:
#
#   make image                     # builds bin/image/ and the image with buildah
#
# or by hand, with any builder (docker, podman, buildah):
#
#   CGO_ENABLED=0 go build -trimpath -o bin/image/root/fleetsim ./cmd/fleetsim
#   mkdir -p -m 1777 bin/image/root/tmp && mkdir -p bin/image/data
#   docker build -t fleetsim .
#
# bin/image/root/ becomes the image's root: /fleetsim and /tmp (the
# embedded hub of `fleetsim run` keeps its stores there). /data is the
# working directory, for `fleetsim serve --data /data`: mount a volume there.
FROM scratch
# A user without a name; Kubernetes' runAsNonRoot accepts a numeric one.
# It owns /data; /tmp is writable by all, as usual.
COPY bin/image/root/ /
COPY --chown=65532:65532 bin/image/data /data
USER 65532:65532
WORKDIR /data
ENV TMPDIR=/tmp
# REST API and MQTT over WebSocket; MQTT over TLS.
EXPOSE 8443 8883
ENTRYPOINT ["/fleetsim"]
CMD ["help"]
