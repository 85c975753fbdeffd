# Dockerfile: boltzd in a container. UNTESTED: the development machines and CI have no container
# engine, so this file has never been built here; tests/packaging/test_docker_packages.py keeps
# its package lists in step with scripts/setup (through an explicit name mapping) and with the
# libraries the built binary links.
#
# Base: NVIDIA publishes CUDA images for Ubuntu (and RHEL-likes), not for Debian. Ubuntu 24.04
# names the build packages exactly as Debian 12 does; two runtime libraries differ (Ubuntu's
# 64-bit time_t rename: libmicrohttpd12 -> libmicrohttpd12t64). CUDA 13.0 matches the toolkit the
# project is developed with (cmake/cuda.cmake builds for sm_80 and sm_90).
#
#   docker build -t boltzd .
#   docker run -d --name boltzd --gpus all -p 8765:8765 -v boltzd-data:/var/lib/boltzd boltzd
#   docker exec boltzd boltzd user add alice --admin --data-dir /var/lib/boltzd
#   docker exec boltzd boltzd token create alice --data-dir /var/lib/boltzd
#
# The container listens on all interfaces (so -p works), which boltzd allows only with auth on:
# every API call but /api/v1/health needs "Authorization: Bearer TOKEN".

ARG CUDA_VERSION=13.0.1
ARG UBUNTU_VERSION=24.04

# ---- build: compilers, CMake, the -dev packages of scripts/setup, the CUDA toolkit
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libopenblas-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBOLTZ_CUDA=ON -DBOLTZ_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" --target boltzd \
 && DESTDIR=/stage cmake --install /build

# ---- runtime: the CUDA runtime libraries (cudart, cuBLAS, cuRAND), the shared libraries boltzd
# links, curl for the health check, the FashionMNIST data set; no compiler, no headers
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libopenblas0-pthread libmicrohttpd12t64 libjansson4 libsqlite3-0 zlib1g \
      curl ca-certificates dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*
# The same unprivileged system user as systemd/boltzd.sysusers.
RUN groupadd --system boltzd \
 && useradd --system --gid boltzd --home-dir /var/lib/boltzd --no-create-home --shell /usr/sbin/nologin boltzd \
 && mkdir -p /var/lib/boltzd \
 && chown boltzd:boltzd /var/lib/boltzd \
 && chmod 0750 /var/lib/boltzd
COPY --from=build /stage/usr/local/bin/boltzd /usr/local/bin/boltzd
COPY --from=build /stage/usr/local/share/boltzd /usr/local/share/boltzd
USER boltzd
WORKDIR /var/lib/boltzd
# The store, job files, checkpoints and samples: keep them in a volume.
VOLUME ["/var/lib/boltzd"]
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8765/api/v1/health >/dev/null || exit 1
# SIGTERM checkpoints running chains; give them time (docker stop -t 120).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/boltzd"]
CMD ["serve", "--listen", "0.0.0.0:8765", "--auth", "on", "--data-dir", "/var/lib/boltzd", \
     "--schema-dir", "/usr/local/share/boltzd/schema", "--web-dir", "/usr/local/share/boltzd/web"]
