"""Aria Automation (vRA 8) ABX action: after a pipeline created an AD group, ask vidm-sync-worker
for a vIDM directory sync and wait until the group is known to vIDM.

It POSTs an ``ad.group.created`` CloudEvent (HTTP binary mode) to the worker's ingress with
``?wait=``, and returns the result when the sync COMPLETED and the group is in vIDM, with the
group's id there (``principalId``, for the project mapping that follows). It raises when the sync
FAILED, the worker rejected the trigger, the group is not in vIDM after the sync (most often: it
lies outside the directory's sync scope), or no result came in time. Python standard library only: no packages to
bundle with the action.

Action inputs:
  ingressUrl     base URL of the ingress, e.g. https://vidm-sync.corp.example.com
  ingressToken   the ingress bearer token; bind an ABX secret (context.getSecret decrypts it)
  domain         AD domain of the group, e.g. corp.example.com (or give directory)
  directory      optional vIDM directory name; wins over domain
  groupName      name of the group that was created
  waitSeconds    optional, how long to wait for the sync result (default 600)
  caFile         optional, PEM file of the CA that signed the ingress certificate
  eventSource    optional CloudEvent source (default urn:vra:abx:vidm-sync)

Returns {"status": "COMPLETED", "eventId", "runId", "directory", "principalId", "result"},
"result" being the whole result event; "principalId" is null when the worker could not check
(its readiness check is off, or the lookup failed: the result's trigger entry has a "hint").
"""

import datetime
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

DEFAULT_WAIT_SECONDS = 600
# 503 and connection failures are retried with the same event id: the worker stores a trigger
# once per id, so a retry never causes a second sync.
RETRIES = 3
RETRY_DELAY_SECONDS = 5


class SyncFailed(Exception):
    """The sync ran and failed, or the worker rejected the trigger. Not worth retrying as is."""


class GroupNotVisible(Exception):
    """The sync completed, but vIDM does not have the group: fix the directory's sync scope."""


class SyncTimeout(Exception):
    """No result in time. The trigger is published and the sync will still happen."""


def handler(context, inputs):
    url = inputs["ingressUrl"].rstrip("/") + "/events"
    token = _secret(context, inputs["ingressToken"])
    wait = int(inputs.get("waitSeconds") or DEFAULT_WAIT_SECONDS)
    data = {"group": {"name": inputs["groupName"]}}
    if inputs.get("directory"):
        data["directory"] = inputs["directory"]
    else:
        data["domain"] = inputs["domain"]

    event_id = str(uuid.uuid4())
    headers = {
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json",
        # CloudEvents HTTP binary mode: the attributes as ce-* headers, the data as the body.
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": inputs.get("eventSource") or "urn:vra:abx:vidm-sync",
        "ce-type": "ad.group.created",
        "ce-time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    body = json.dumps(data).encode("utf-8")
    query = "?" + urllib.parse.urlencode({"wait": "%ds" % wait})
    tls = ssl.create_default_context(cafile=inputs.get("caFile") or None)

    status, reply_headers, reply = _post(url + query, headers, body, wait + 30, tls)
    if status == 200:
        result = json.loads(reply)
        outcome = reply_headers.get("Dirsync-Result-Status", "")
        run = result.get("data", {})
        if outcome != "COMPLETED":
            err = run.get("error") or {}
            raise SyncFailed("vIDM sync of directory %s (run %s) failed: %s: %s"
                             % (run.get("directoryName"), run.get("runId"), err.get("code"), err.get("message")))
        # The readiness check's answer, also in the result's entry for this event ("visible",
        # "principalId", "hint"), comes as two headers for convenience.
        visible = reply_headers.get("Dirsync-Principal-Visible")
        principal_id = reply_headers.get("Dirsync-Principal-Id")
        if visible == "false":
            entry = next((t for t in run.get("triggers", []) if t.get("id") == event_id), {})
            raise GroupNotVisible("the sync of directory %s (run %s) completed, but group %s is not in vIDM: %s"
                                  % (run.get("directoryName"), run.get("runId"), inputs["groupName"], entry.get("hint")))
        print("group %s is synced into vIDM directory %s (run %s), id %s"
              % (inputs["groupName"], run.get("directoryName"), run.get("runId"), principal_id or "not checked"))
        return {"status": "COMPLETED", "eventId": event_id, "runId": run.get("runId"),
                "directory": run.get("directoryName"), "principalId": principal_id, "result": result}

    problem = _problem(reply)
    if status == 422:
        raise SyncFailed("the worker rejected the trigger (%s): %s" % (problem.get("code"), problem.get("error")))
    if status == 504:
        raise SyncTimeout("no sync result within %ds for event %s: %s" % (wait, event_id, problem.get("error")))
    raise Exception("ingress answered %d: %s" % (status, problem.get("error") or reply[:200]))


def _secret(context, value):
    """An input bound to an ABX secret arrives encrypted; context.getSecret decrypts it."""
    get = getattr(context, "getSecret", None)
    return get(value) if get else value


def _post(url, headers, body, timeout, tls):
    """POST, retrying 503 answers and connection failures with the same event id."""
    for attempt in range(1, RETRIES + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:
                return response.status, response.headers, response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            reply = e.read().decode("utf-8", "replace")
            if e.code != 503 or attempt == RETRIES:
                return e.code, e.headers, reply
        except (urllib.error.URLError, OSError) as e:
            if attempt == RETRIES:
                raise
            print("ingress not reachable (%s); retrying" % e)
        time.sleep(RETRY_DELAY_SECONDS * attempt)
    raise AssertionError("unreachable")


def _problem(reply):
    try:
        return json.loads(reply)
    except ValueError:
        return {}
