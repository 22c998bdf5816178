import { describe, expect, it } from "vitest";
import { DEFAULT_PROVISIONING, desiredObjects, renderProjectDomain, type ProvisioningSpec } from "../../src/core/desired-state.js";
import { renderObjects, TemplateError } from "../../src/core/template.js";

const CONFIG_MAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: ids-{{ project }}
  labels:
    team: {{ project }}
data:
  plain: {{ project }}
  quoted: "{{ project }}"
  single: '{{ project }}'
  inFlow: [{{ project }}, other]
  mapping: {id: {{ project }}}
  {{ project }}: as a key
  block: |
    id={{ project }}
`;

const spec = (overrides: Partial<ProvisioningSpec> = {}): ProvisioningSpec => ({ ...DEFAULT_PROVISIONING, ...overrides });

describe("typed rendering: substituted values stay strings", () => {
  it.each(["0x1f", "123", "true", "null", "1e3", "~", "007", ".inf", "yes", "2024-01-01"])("%s arrives as the string it is, quoted in the template or not", (id) => {
    const [object] = renderObjects(CONFIG_MAP, { project: id }, "ids.yaml");
    expect(object!.metadata.name).toBe(`ids-${id}`);
    expect(object!.metadata.labels).toEqual({ team: id });
    expect(object!.data).toEqual({
      plain: id,
      quoted: id,
      single: id,
      inFlow: [id, "other"],
      mapping: { id },
      [id]: "as a key",
      block: `id=${id}\n`,
    });
  });

  it("keeps a value that looks like YAML structure a string: it can never add fields or documents", () => {
    const value = "x\nkind: Secret\n---\nevil: {a: 1}";
    const objects = renderObjects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  v: {{ value }}\n", { value }, "t.yaml");
    expect(objects).toHaveLength(1);
    expect(objects[0]).toEqual({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a" }, data: { v: value } });
  });

  it("leaves what the template itself types alone", () => {
    const [object] = renderObjects("apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec: {replicas: 3, on: true, ratio: 0.5, none: null}\n", {}, "t.yaml");
    expect(object!.spec).toEqual({ replicas: 3, on: true, ratio: 0.5, none: null });
  });

  it("still names unknown variables, also in comments, and refuses an unclosed placeholder", () => {
    expect(() => renderObjects("# owner: {{ owner }}\napiVersion: v1\nkind: X\nmetadata: {name: a}\n", { project: "p" }, "c.yaml")).toThrow(
      /c\.yaml: unknown variable\(s\) \{\{ owner \}\}; known: project/,
    );
    expect(() => renderObjects("apiVersion: v1\nkind: X\nmetadata: {name: '{{ project'}\n", { project: "p" }, "u.yaml")).toThrow(TemplateError);
  });

  it("shows the operator their placeholder, not the stand-in for it, in a YAML error", () => {
    expect(() => renderObjects("a: [\n{{ project }}", { project: "p" }, "bad.yaml")).toThrow(/bad\.yaml document 1: .*\{\{ project \}\}/s);
  });

  it("types the project of every desired object as a string, namespace and service account included", () => {
    const objects = desiredObjects(spec({ templates: [{ source: "ids.yaml", text: CONFIG_MAP }], namespaceTemplate: "ns-{{ project }}" }), {
      project: "123",
      domain: "development",
    });
    expect(objects.map((object) => object.object.metadata.labels?.["clusterplane.io/project"] ?? object.object.metadata.labels?.team)).toEqual(["123", undefined, "123"]);
    expect(objects[2]!.object.data).toMatchObject({ plain: "123" });
  });
});

describe("rendering a project-domain", () => {
  it("tags every object with its project-domain, role and source", () => {
    const { objects, errors } = renderProjectDomain(spec({ templates: [{ source: "ids.yaml", text: CONFIG_MAP }] }), { project: "p", domain: "d" });
    expect(errors).toEqual([]);
    expect(objects.map(({ project, domain, role, source }) => [project, domain, role, source])).toEqual([
      ["p", "d", "namespace", "namespaceTemplate"],
      ["p", "d", "service-account", "serviceAccount"],
      ["p", "d", "template", "ids.yaml"],
    ]);
  });

  it("keeps the namespace and service account when an extra template is broken, and says which", () => {
    const broken = { source: "broken.yaml", text: "apiVersion: v1\nkind: X\nmetadata: {name: '{{ nowhere }}'}\n" };
    const { objects, errors } = renderProjectDomain(spec({ templates: [broken, { source: "ids.yaml", text: CONFIG_MAP }] }), { project: "p", domain: "d" });
    expect(objects.map((object) => object.role)).toEqual(["namespace", "service-account", "template"]);
    expect(errors).toEqual([expect.stringMatching(/^broken\.yaml: unknown variable\(s\) \{\{ nowhere \}\}.*\(for p\/d\)$/)]);
  });

  it("gives nothing for a project-domain whose service account cannot be rendered: it cannot be provisioned", () => {
    const { objects, errors } = renderProjectDomain(
      spec({ serviceAccount: { name: "default", labels: {}, annotations: { role: "{{ iamRole }}" } } }),
      { project: "p", domain: "d" },
    );
    expect(objects).toEqual([]);
    expect(errors).toEqual([expect.stringContaining("{{ iamRole }}")]);
  });
});
