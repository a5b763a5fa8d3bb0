#!/bin/sh
# Roll out an overlay with its migrations first (docs/kubernetes.md, "Rolling out"):
#   infra/k8s/deploy.sh infra/k8s/overlays/production
# 1. delete the previous release's migration Jobs (a Job's pod template cannot change);
# 2. apply what the migrations need and the Jobs, nothing that runs the new version (the
#    namespace, ConfigMaps, NetworkPolicies, the media volume's claim: whatever is neither
#    api, worker, gateway nor storefront),
#    and wait until every Job completed:
#    the schema is migrated while the old pods still serve (expand/contract keeps them working);
# 3. apply everything: the Deployments roll one pod at a time (maxUnavailable 0), each new pod
#    taking traffic once /health/ready answers, each old one draining (preStop, then SIGTERM);
# 4. where the cluster runs the Prometheus Operator (its API group is served), apply the
#    overlay's monitoring/: the scrape configuration and the rules of this version;
# 5. wait for every rollout.
# A failed Job stops here, before any pod of the new version starts.
set -eu
overlay=${1:?usage: deploy.sh <overlay directory>}
timeout=${MIGRATION_TIMEOUT:-900s}
namespace=$(kubectl kustomize "$overlay" | awk '$1 == "namespace:" { print $2; exit }')
migration=app.kubernetes.io/component=migration

kubectl -n "$namespace" delete job -l "$migration" --ignore-not-found --wait=true
kubectl apply -k "$overlay" -l "app.kubernetes.io/component notin (api,worker,gateway,storefront)"
kubectl -n "$namespace" wait --for=condition=complete job -l "$migration" --timeout="$timeout"
kubectl apply -k "$overlay"
if [ -d "$overlay/monitoring" ]; then
    operator=$(kubectl api-resources --api-group=monitoring.coreos.com -o name 2>/dev/null || true)
    if echo "$operator" | grep -q '^podmonitors\.'; then
        kubectl apply -k "$overlay/monitoring"
    else
        echo "no Prometheus Operator here: $overlay/monitoring not applied (docs/observability.md)"
    fi
fi
for deployment in $(kubectl -n "$namespace" get deployment -o name); do
    kubectl -n "$namespace" rollout status "$deployment" --timeout=600s
done
