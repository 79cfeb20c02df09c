// The embedded shared-types copy as the Nx project `shared-types`, for this repository
// checked out on its own only. The plugin is named by this repository's nx.json, which
// Nx reads only when this folder is the workspace root: nested as the pipeline
// monorepo's packages/reassembly-trigger, the monorepo's nx.json applies instead, the
// monorepo's packages/shared-types is the one `shared-types` project, and the embedded
// copy is no project at all (a shared-types/project.json here would claim that name a
// second time and break the monorepo's whole project graph).
const { readFileSync } = require("node:fs");
const { dirname, join } = require("node:path");

exports.createNodesV2 = [
  "shared-types/standalone.project.json",
  async (files, _options, context) =>
    files.map((file) => {
      const config = JSON.parse(readFileSync(join(context.workspaceRoot, file), "utf8"));
      const root = dirname(file);
      return [file, { projects: { [root]: { ...config, root } } }];
    }),
];
