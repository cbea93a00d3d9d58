#!/usr/bin/env bash
# Pipeline step: after the pipeline created an AD group, have vIDM sync the group's directory and
# wait until the sync has finished and the group is in vIDM, so that the next step can map the
# group to a vRA project. The group's id in vIDM is in the result (its trigger entry's
# principalId); `vidm-sync publish --wait --print-id` prints only that id.
#
# Needs the vidm-sync CLI on PATH and the NATS connection in the environment, as the worker reads
# it: NATS_URL, plus NATS_CREDS_FILE or NATS_USER/NATS_PASSWORD(_FILE) or NATS_TOKEN(_FILE), and
# NATS_CA_FILE for TLS with a private CA.
#
# Inputs (environment):
#   AD_DOMAIN      AD domain of the group, e.g. corp.example.com
#   GROUP_NAME     name of the group that was created
#   SYNC_TIMEOUT   how long to wait for the result (default 15m)
#   RESULT_FILE    optional: where to save the result event (JSON) for later steps
set -euo pipefail

: "${AD_DOMAIN:?set AD_DOMAIN to the group's AD domain}"
: "${GROUP_NAME:?set GROUP_NAME to the new group's name}"

# The result event (JSON) goes to stdout, progress and errors to stderr (the pipeline log).
set +e
result=$(vidm-sync publish --domain "$AD_DOMAIN" --group "$GROUP_NAME" --wait --timeout "${SYNC_TIMEOUT:-15m}")
rc=$?
set -e

if [[ -n "${RESULT_FILE:-}" && -n "$result" ]]; then
  printf '%s\n' "$result" > "$RESULT_FILE"
fi

case $rc in
  0)
    run=$(printf '%s' "$result" | grep -o '"runId": *"[^"]*"' | head -n1 | cut -d'"' -f4)
    echo "group $GROUP_NAME is synced into vIDM (run $run)"
    ;;
  4)
    # The sync completed, but vIDM does not have the group: it lies outside the directory's sync
    # scope (its group DNs). Another sync will not help; the directory's settings will.
    echo "vIDM synced the directory, but group $GROUP_NAME is not in it: check the directory's sync scope" >&2
    ;;
  1)
    # Timeout, NATS unreachable, ...: if the trigger was published, the sync still happens.
    echo "no sync result for group $GROUP_NAME (see the message above); the sync may still happen" >&2
    ;;
  2)
    # Nothing was published: the domain, group or connection settings are wrong.
    echo "invalid trigger for group $GROUP_NAME; nothing was published" >&2
    ;;
  3)
    # The sync ran and FAILED, or the worker rejected the trigger (unknown directory, ...).
    echo "vIDM sync for group $GROUP_NAME failed or was rejected:" >&2
    if [[ -n "$result" ]]; then printf '%s\n' "$result" >&2; fi
    ;;
  *)
    echo "vidm-sync exited $rc" >&2
    ;;
esac
exit "$rc"
