// Validates custom resources (JSON list on stdin) against their CRDs' schemas, from the
// @kubernetes-models packages installed in the folder given as the first argument (make deploy-tools).
// Prints one line per object; exits 1 when one is invalid or has no known schema.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = { "keda.sh": "keda", "monitoring.coreos.com": "prometheus-operator" };

const modules = join(process.argv[2], "node_modules", "@kubernetes-models");
const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const object of objects) {
  const [group, version] = object.apiVersion.split("/");
  const where = `${object.kind}/${object.metadata?.name} (${object.apiVersion})`;
  const pkg = PACKAGES[group];
  if (!pkg || !version) {
    console.log(`ERROR ${where}: no schema known for this group`);
    failed = true;
    continue;
  }
  let model;
  try {
    model = (await import(pathToFileURL(join(modules, pkg, group, version, `${object.kind}.js`)).href))[object.kind];
  } catch (error) {
    console.log(`ERROR ${where}: no schema for this kind (${error.code ?? error.message})`);
    failed = true;
    continue;
  }
  try {
    new model(object).validate();
    console.log(`ok ${where}`);
  } catch (error) {
    console.log(`ERROR ${where}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
