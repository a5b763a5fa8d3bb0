# The storefront's static files behind nginx, for Kubernetes (infra/k8s/base/storefront.yaml);
# Compose mounts storefront/ into nginx instead. Build from the repository root:
#   docker build -f infra/storefront.Dockerfile -t commerce-storefront:dev .
# nginx-unprivileged: user 101, port 8080, its pid and temporary files under /tmp, so the pod
# runs as non-root with a read-only root file system and an emptyDir on /tmp.
FROM nginxinc/nginx-unprivileged:1.27-alpine

USER root
# One worker process: the pod's CPU limit is one core (worker_processes auto would start one
# per core of the node).
RUN sed -i 's/^worker_processes .*/worker_processes 1;/' /etc/nginx/nginx.conf
# Owned by root: the server can read the files, never change them.
COPY --chown=root:root storefront/ /usr/share/nginx/html/
USER 101
