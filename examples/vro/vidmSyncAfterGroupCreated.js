/*
 * vRO action vidmSyncAfterGroupCreated: after a workflow created an AD group, ask
 * vidm-sync-worker for a vIDM directory sync and wait until the group is known to vIDM.
 *
 * It POSTs an ad.group.created CloudEvent (HTTP binary mode: the attributes as ce-* headers, the
 * data as the body) to the worker's ingress with ?wait=, and returns the result event when the
 * sync COMPLETED and the group is in vIDM; it throws when the sync FAILED, the worker rejected the
 * trigger, the group is not in vIDM after the sync (most often: outside the directory's sync
 * scope), or no result came in time. The group's id in vIDM, for the mapping that follows, is the
 * principalId of the result's entry for this trigger:
 *   var result = JSON.parse(returned);
 *   var mine = result.data.triggers.filter(function (t) { return t.id === eventId; })[0];
 *   var groupId = mine.principalId;   // absent when the worker could not check (mine.hint says why)
 *
 * Inputs:
 *   ingressUrl    string        base URL of the ingress, e.g. https://vidm-sync.corp.example.com
 *   ingressToken  SecureString  the ingress bearer token
 *   domain        string        AD domain of the group, e.g. corp.example.com (or give directory)
 *   directory     string        optional vIDM directory name; wins over domain
 *   groupName     string        name of the group that was created
 *   waitSeconds   number        optional, how long to wait for the result (default 600)
 * Return type: string (the result event as JSON: type vidm.directory.sync.completed)
 *
 * Written for vRO's Rhino engine (ECMAScript 5): var, no arrow functions or template strings.
 */
var wait = waitSeconds > 0 ? Math.floor(waitSeconds) : 600;
var data = { group: { name: groupName } };
if (directory) {
    data.directory = directory;
} else {
    data.domain = domain;
}

// A transient host: nothing is added to the inventory. The operation timeout must outlast the wait.
var template = RESTHostManager.createHost("vidm-sync-ingress");
template.url = ingressUrl;
template.connectionTimeout = 30;
template.operationTimeout = wait + 30;
var host = RESTHostManager.createTransientHostFrom(template);

// One event id for every attempt: the worker stores a trigger once per id, so a retry never
// causes a second sync.
var eventId = System.nextUUID();
var body = JSON.stringify(data);
var response = null;
for (var attempt = 1; attempt <= 3; attempt++) {
    var request = host.createRequest("POST", "/events?wait=" + wait + "s", body);
    request.contentType = "application/json";
    request.setHeader("Authorization", "Bearer " + ingressToken);
    request.setHeader("ce-specversion", "1.0");
    request.setHeader("ce-id", eventId);
    request.setHeader("ce-source", "urn:vro:action:vidmSyncAfterGroupCreated");
    request.setHeader("ce-type", "ad.group.created");
    request.setHeader("ce-time", new Date().toISOString());
    response = request.execute();
    if (response.statusCode !== 503) {
        break;
    }
    // The ingress could not publish (JetStream unavailable): it asks to retry later.
    System.log("vidm-sync ingress unavailable (503), attempt " + attempt + "; retrying");
    System.sleep(5000 * attempt);
}

var status = response.statusCode;
var content = response.contentAsString;
var answer = {};
try {
    answer = JSON.parse(content);
} catch (e) {
    answer = { error: String(content).substring(0, 200) };
}

if (status === 200) {
    var run = answer.data || {};
    if (answer.type !== "vidm.directory.sync.completed") {
        var err = run.error || {};
        throw "vIDM sync of directory " + run.directoryName + " (run " + run.runId + ") failed: " +
            err.code + ": " + err.message;
    }
    // The readiness check: this trigger's entry says whether vIDM has the group, and its id.
    var mine = {};
    var triggers = run.triggers || [];
    for (var i = 0; i < triggers.length; i++) {
        if (triggers[i].id === eventId) {
            mine = triggers[i];
        }
    }
    if (mine.visible === false) {
        throw "the sync of directory " + run.directoryName + " (run " + run.runId + ") completed, but group " +
            groupName + " is not in vIDM: " + mine.hint;
    }
    System.log("group " + groupName + " is synced into vIDM directory " + run.directoryName +
        " (run " + run.runId + ", event " + eventId + "), id " + (mine.principalId || "not checked"));
    return content;
}
if (status === 422) {
    throw "the worker rejected the trigger (" + answer.code + "): " + answer.error;
}
if (status === 504) {
    // The trigger is published: the sync still happens, only later than we waited for.
    throw "no sync result within " + wait + "s for event " + eventId + ": " + answer.error;
}
throw "vidm-sync ingress answered " + status + ": " + answer.error;
