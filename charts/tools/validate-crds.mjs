// Validates Prometheus Operator objects (ServiceMonitor, PodMonitor) rendered by the chart
// against the schemas of @kubernetes-models/prometheus-operator (generated from the operator's
// Go types: types, required fields, enums and patterns such as durations; unknown fields are
// not rejected). Usage: node validate-crds.mjs <node_modules dir> <file.crds.json>...
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const kinds = {};
for (const kind of ["ServiceMonitor", "PodMonitor", "PrometheusRule"]) {
  const path = join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", `${kind}.js`);
  kinds[`monitoring.coreos.com/v1/${kind}`] = (await import(pathToFileURL(path).href))[kind];
}
let failed = 0;
for (const file of files) {
  for (const doc of JSON.parse(readFileSync(file, "utf8"))) {
    const Model = kinds[`${doc.apiVersion}/${doc.kind}`];
    const what = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    if (!Model) {
      console.log(`ERROR ${what}: no schema for ${doc.apiVersion} ${doc.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`INFO ${what} passed against @kubernetes-models/prometheus-operator`);
    } catch (e) {
      console.log(`ERROR ${what}: ${e.message}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
