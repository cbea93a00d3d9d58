// Test shim for examples/vro: runs a vRO action under node with stand-ins for the vRO scripting
// objects it uses (RESTHostManager, RESTHost, RESTRequest, RESTResponse, System). The action's
// source becomes the body of a function whose parameters are its inputs, as vRO runs actions.
// Requests are recorded, not sent; each execute() answers with the next canned response.
//
// Usage: node vro_shim.js <action.js> <inputs.json> <responses.json>
//   responses.json: [{"statusCode": 200, "content": "..."}, ...]
// Prints {"requests": [...], "logs": [...], "returned": ..., "thrown": ...} as JSON on stdout.
"use strict";
const fs = require("fs");
const crypto = require("crypto");

const [actionPath, inputsPath, responsesPath] = process.argv.slice(2);
const source = fs.readFileSync(actionPath, "utf8");
const inputs = JSON.parse(fs.readFileSync(inputsPath, "utf8"));
const responses = JSON.parse(fs.readFileSync(responsesPath, "utf8"));
const requests = [];
const logs = [];

function RESTHost(name) {
  this.name = name;
  this.url = "";
  this.transient = false;
}
RESTHost.prototype.createRequest = function (method, path, content) {
  const host = this;
  const headers = {};
  return {
    contentType: null,
    setHeader(name, value) { headers[name] = String(value); },
    execute() {
      requests.push({
        method, path, content, headers: Object.assign({}, headers), contentType: this.contentType,
        host: { url: host.url, transient: host.transient, operationTimeout: host.operationTimeout, connectionTimeout: host.connectionTimeout },
      });
      const r = responses.shift();
      if (!r) throw "shim: no canned response left";
      return { statusCode: r.statusCode, contentAsString: r.content };
    },
  };
};

const RESTHostManager = {
  createHost(name) { return new RESTHost(name); },
  createTransientHostFrom(template) {
    const h = Object.assign(new RESTHost(template.name), template);
    h.transient = true;
    return h;
  },
};

const System = {
  log(m) { logs.push(String(m)); },
  warn(m) { logs.push("WARN " + String(m)); },
  sleep() {},
  // VRO_SHIM_UUID lets a test give the action the event id of an answer it replays.
  nextUUID() { return process.env.VRO_SHIM_UUID || crypto.randomUUID(); },
};

const names = Object.keys(inputs);
const action = new Function(...names, "RESTHostManager", "System", source);
const out = { requests, logs };
try {
  out.returned = action(...names.map((n) => inputs[n]), RESTHostManager, System);
} catch (e) {
  out.thrown = String(e);
}
process.stdout.write(JSON.stringify(out));
