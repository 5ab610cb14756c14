#!/bin/sh
# The engine's namespace with an explicit retention, and its search attributes. Idempotent (a
# second run updates the retention and creates only what is missing); any other failure, such as
# an unreachable server or a refused attribute, fails the job, and the workers and the API (which
# depend on it) do not start.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${STUDIO_NAMESPACE:?}" "${RETENTION:?}" "${SEARCH_ATTRIBUTES:?}"

tries=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -lt 30 ] || { echo "Temporal at $TEMPORAL_ADDRESS is not healthy" >&2; exit 1; }
  sleep 2
done

if temporal operator namespace describe --namespace "$STUDIO_NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace update --namespace "$STUDIO_NAMESPACE" --retention "$RETENTION"
else
  temporal operator namespace create --namespace "$STUDIO_NAMESPACE" --retention "$RETENTION"
fi

existing=$(temporal operator search-attribute list --namespace "$STUDIO_NAMESPACE")
for pair in $SEARCH_ATTRIBUTES; do
  name=${pair%%=*}
  type=${pair#*=}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$STUDIO_NAMESPACE" \
      --name "$name" --type "$type"
  fi
done
temporal operator namespace describe --namespace "$STUDIO_NAMESPACE"
