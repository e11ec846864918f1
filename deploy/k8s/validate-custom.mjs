// Validates the custom resources of rendered manifests (JSON array on stdin) with the
// @kubernetes-models validators: ServiceMonitor, PrometheusRule, ExternalSecret, and Argo
// Rollouts' Rollout, AnalysisTemplate and AnalysisRun. Prints one line per invalid resource and
// exits 1; kinds it has no model for are named and fail too. The validators check types and
// required fields, not unknown keys: tests/deploy/model_keys.py walks the models for those.
import { readFileSync } from "node:fs";

const PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "external-secrets.io": "@kubernetes-models/external-secrets",
  "argoproj.io": "@kubernetes-models/argo-rollouts",
};

const docs = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const doc of docs) {
  const [group, version] = doc.apiVersion.split("/");
  const pkg = PACKAGES[group];
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (!pkg || !version) {
    console.log(`${name}: no model for ${doc.apiVersion}`);
    bad += 1;
    continue;
  }
  const models = await import(`${pkg}/${group}/${version}`);
  const Model = models[doc.kind];
  if (!Model) {
    console.log(`${name}: no model for kind ${doc.kind} in ${pkg}`);
    bad += 1;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`${name}: valid ${doc.apiVersion}`);
  } catch (err) {
    const details = (err.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
    console.log(`${name}: invalid: ${details.join("; ") || err.message}`);
    bad += 1;
  }
}
process.exit(bad ? 1 : 0);
