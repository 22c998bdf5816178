import { describe, expect, it } from "vitest";
import { canonicalJson, DEFAULT_PROVISIONING, desiredObjects, type ProvisioningSpec } from "../../src/core/desired-state.js";
import { parseDuration } from "../../src/core/duration.js";
import { renderObjects, renderText, TemplateError } from "../../src/core/template.js";

const spec = (overrides: Partial<ProvisioningSpec> = {}): ProvisioningSpec => ({ ...DEFAULT_PROVISIONING, ...overrides });

describe("template rendering", () => {
  it("replaces {{ name }} with and without spaces", () => {
    expect(renderText("{{project}}-{{ domain }}", { project: "p", domain: "d" }, "t")).toBe("p-d");
  });

  it("refuses an unknown variable, naming it, instead of leaving it in the output", () => {
    expect(() => renderText("role: {{ iamRole }}", { project: "p" }, "sa.yaml")).toThrow(/sa\.yaml: unknown variable\(s\) \{\{ iamRole \}\}; known: project/);
  });

  it("refuses an unclosed placeholder", () => {
    expect(() => renderText("x: {{ project", { project: "p" }, "t")).toThrow(TemplateError);
  });

  it("parses multi-document YAML and requires apiVersion, kind and metadata.name", () => {
    const text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n";
    expect(renderObjects(text, {}, "t").map((o) => o.metadata.name)).toEqual(["a", "b"]);
    expect(() => renderObjects("kind: ConfigMap\nmetadata: {name: a}", {}, "bad.yaml")).toThrow(/bad\.yaml document 1: apiVersion is required/);
    expect(() => renderObjects("- a\n- b", {}, "list.yaml")).toThrow(/must be a mapping/);
  });
});

describe("desired state of a project-domain", () => {
  it("is a namespace and a service account by default", () => {
    const objects = desiredObjects(spec(), { project: "project1", domain: "development" });
    expect(objects.map((o) => o.key)).toEqual(["v1/Namespace//project1-development", "v1/ServiceAccount/project1-development/default"]);
  });

  it("annotates the service account from template data, per-domain data winning", () => {
    const objects = desiredObjects(
      spec({
        serviceAccount: { name: "default", labels: {}, annotations: { "eks.amazonaws.com/role-arn": "{{ role }}" } },
        templateData: { role: "arn:aws:iam::1:role/dev" },
        domainData: { production: { role: "arn:aws:iam::1:role/prod" } },
      }),
      { project: "p", domain: "production" },
    );
    expect(objects[1]!.object.metadata.annotations).toEqual({ "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/prod" });
  });

  it("places templated objects in the namespace, with project, domain and namespace variables", () => {
    const template = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota-{{ domain }}\n  labels: {team: '{{ project }}', ns: '{{ namespace }}'}\nspec:\n  hard: {cpu: '{{ cpu }}'}\n";
    const [, , quota] = desiredObjects(spec({ templates: [{ source: "quota.yaml", text: template }], templateData: { cpu: "8" } }), {
      project: "p",
      domain: "staging",
    });
    expect(quota!.object).toMatchObject({ metadata: { name: "quota-staging", namespace: "p-staging", labels: { team: "p", ns: "p-staging" } }, spec: { hard: { cpu: "8" } } });
  });

  it("rejects a namespace template that yields an invalid name", () => {
    expect(() => desiredObjects(spec({ namespaceTemplate: "{{ project }}_{{ domain }}" }), { project: "p", domain: "d" })).toThrow(/namespace template gives "p_d"/);
  });

  it("hashes what would be applied, so only real changes count", () => {
    const a = desiredObjects(spec(), { project: "p", domain: "d" });
    const b = desiredObjects(spec(), { project: "p", domain: "d" });
    const c = desiredObjects(spec({ serviceAccount: { name: "default", labels: { x: "1" }, annotations: {} } }), { project: "p", domain: "d" });
    expect(a.map((o) => o.hash)).toEqual(b.map((o) => o.hash));
    expect(c[0]!.hash).toBe(a[0]!.hash);
    expect(c[1]!.hash).not.toBe(a[1]!.hash);
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] })).toBe('{"a":[1,{"c":3,"d":2}],"b":1}');
  });
});

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["10m", 600_000],
    ["1h", 3_600_000],
    [250, 250],
    ["1.5s", 1500],
  ])("parses %j", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "10 minutes", "-1s", "1d", null])("rejects %j", (text) => expect(parseDuration(text)).toBeNull());
});
