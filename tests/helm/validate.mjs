// Validates rendered Kubernetes manifests offline against Kubernetes' schemas
// (kubernetes-models), one object at a time. Usage: node validate.mjs <rendered.yaml>...
// YAML is parsed as 1.1, as the API server's decoder does ("on"/"yes" are booleans there).
// Exit 1 naming the file, the object and the schema error when any object is invalid or of a
// kind we have no schema for.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);
let failures = 0;
let checked = 0;

function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion : `v1`;
  const path = apiVersion.includes("/") ? `kubernetes-models/${group}/${kind}` : `kubernetes-models/v1/${kind}`;
  try {
    const mod = require(path);
    return mod[kind] ?? mod.default;
  } catch (e) {
    return null;
  }
}

for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1" });
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      failures++;
      continue;
    }
    const obj = doc.toJS();
    if (obj == null) continue;
    const name = `${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
    const Model = obj.apiVersion && obj.kind ? modelFor(obj.apiVersion, obj.kind) : null;
    if (!Model) {
      console.error(`${file}: ${name}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      failures++;
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
    } catch (e) {
      console.error(`${file}: ${name}: ${e.message}`);
      failures++;
    }
    // The CNI network config the chart carries must be JSON the plugin can read.
    if (obj.kind === "ConfigMap" && obj.data?.cni_network_config) {
      try {
        const conf = JSON.parse(obj.data.cni_network_config.replace("__NODENAME__", "node1"));
        if (!Array.isArray(conf.plugins) || conf.plugins[0].type !== "calico") throw new Error("no calico plugin");
      } catch (e) {
        console.error(`${file}: ${name}: cni_network_config: ${e.message}`);
        failures++;
      }
    }
  }
}
console.log(`${checked} objects valid, ${failures} problems`);
process.exit(failures === 0 && checked > 0 ? 0 : 1);
