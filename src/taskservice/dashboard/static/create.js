// The "New task" form: parameters as key/value rows or raw JSON; the server's errors beside their field.
// A type's declaration (ListTaskTypes) gives its rows: one per parameter, with its type, rules and text.

import { ApiError, call } from "./api.js";
import { h } from "./ui.js";

// Server field path (before any "[...]") -> the form field that shows its message.
const FIELD_OF = { name: "name", type: "type", description: "description", payload: "payload",
  "payload.parameters": "payload", priority: "priority", max_retries: "max_retries", delay_seconds: "delay_seconds" };

export class CreateForm {
  constructor({ onCreated }) {
    this.onCreated = onCreated;
    this.dialog = document.getElementById("create");
    this.form = document.getElementById("create-form");
    this.params = document.getElementById("create-params");
    this.json = document.getElementById("create-json");
    this.raw = document.getElementById("create-raw");
    this.type = document.getElementById("create-type");
    this.declared = {}; // type name -> its declaration, for the types that declare something
    for (const b of this.dialog.querySelectorAll("[data-close]")) b.addEventListener("click", () => this.dialog.close());
    document.getElementById("create-add-param").addEventListener("click", () => this.addParam("", "", true));
    this.raw.addEventListener("change", () => this.toggleRaw());
    this.type.addEventListener("change", () => this.suggest());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  setTypes(types, declarations = []) {
    this.declared = Object.fromEntries(declarations.filter((d) => d.declared).map((d) => [d.name, d]));
    const current = this.type.value;
    this.type.replaceChildren(...types.map((t) => h("option", { value: t }, t)));
    if (types.includes(current)) this.type.value = current;
    this.suggest();
  }

  open() {
    this.clearErrors();
    this.dialog.showModal();
    document.getElementById("create-name").focus();
  }

  addParam(key, value, focus = false, spec = this.specOf(key)) {
    const keyInput = h("input", { class: "param-key", value: key, placeholder: "key", autocomplete: "off" });
    const row = h("div", { class: "param" }, keyInput, valueInput(spec, value),
      h("button", { class: "icon-btn", type: "button", onclick: () => this.removeParam(row) }, "×"));
    if (spec) {
      const note = h("p", { class: "field-note muted" }, describe(spec));
      row.append(note);
    }
    this.params.append(row);
    this.labelParams();
    if (focus) keyInput.focus();
  }

  /** The declared parameter `key` of the chosen type, if it declares one. */
  specOf(key) {
    return (this.declared[this.type.value]?.parameters || []).find((p) => p.name === key);
  }

  removeParam(row) {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    this.labelParams();
    (next?.querySelector("input") || document.getElementById("create-add-param")).focus();
  }

  /** Labels say which row they belong to ("Parameter 2 value"), renumbered when a row goes. */
  labelParams() {
    [...this.params.children].forEach((row, i) => {
      const [key, value] = fields(row);
      key.setAttribute("aria-label", `Parameter ${i + 1} name`);
      value.setAttribute("aria-label", `Parameter ${i + 1} value`);
      row.querySelector(".icon-btn").setAttribute("aria-label", `Remove parameter ${i + 1}`);
      const note = row.querySelector(".field-note");
      if (note) {
        note.id = `create-param-${i + 1}-note`;
        value.setAttribute("aria-describedby", note.id);
      }
    });
  }

  /** Offers the declared parameters of the chosen type while the user has not typed any yet. */
  suggest() {
    const declared = this.declared[this.type.value];
    // A container task type says the image its tasks run (a Kubernetes Job runs them).
    const image = declared?.container?.image ? `Runs in a container: ${declared.container.image}` : "";
    document.getElementById("create-type-note").textContent = [declared?.description, image].filter(Boolean).join(" ");
    if (this.raw.checked) return;
    const untouched = [...this.params.children].every((row) => {
      const [key, value] = fields(row);
      return !value.value && (!key.value || key.value === key.dataset.suggested);
    });
    if (!untouched) return;
    this.params.replaceChildren();
    const keys = (declared?.parameters || []).map((p) => p.name);
    for (const key of keys.length ? keys : [""]) this.addParam(key, "");
    for (const input of this.params.querySelectorAll(".param-key")) input.dataset.suggested = input.value;
  }

  /** [key, value] of the rows worth sending: not blank, and not an offered key left without a value. */
  rows() {
    return [...this.params.children]
      .map(fields)
      .filter(([key, value]) => value.value || (key.value.trim() && key.value !== key.dataset.suggested))
      .map(([key, value]) => [key.value.trim(), value.value]);
  }

  /** The parameters map, from the rows or the JSON text. */
  parameters() {
    return this.raw.checked ? this.parseJson() : Object.fromEntries(this.rows());
  }

  /** The JSON text as a parameters map; throws a payload error when it is not a flat object. */
  parseJson() {
    let value;
    try {
      value = JSON.parse(this.json.value.trim() || "{}");
    } catch (error) {
      throw new ApiError("invalid_argument", `payload: not valid JSON (${error.message})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new ApiError("invalid_argument", 'payload: must be a JSON object such as {"seconds": "2"}');
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === "object" && v !== null) {
        throw new ApiError("invalid_argument", `payload.parameters['${k}']: values must be strings, numbers or booleans`);
      }
      out[k] = v === null ? "" : String(v);
    }
    return out;
  }

  toggleRaw() {
    this.clearErrors();
    if (this.raw.checked) {
      this.json.value = JSON.stringify(Object.fromEntries(this.rows()), null, 2);
    } else {
      try {
        const params = this.parseJson();
        this.params.replaceChildren();
        for (const [k, v] of Object.entries(params)) this.addParam(k, v);
        if (!this.params.children.length) this.addParam("", "");
      } catch (error) {
        this.raw.checked = true;
        this.showError(error);
        return;
      }
    }
    this.json.hidden = !this.raw.checked;
    this.params.hidden = this.raw.checked;
    document.getElementById("create-add-param").hidden = this.raw.checked;
  }

  request() {
    const value = (id) => document.getElementById(id).value.trim();
    const request = {
      name: document.getElementById("create-name").value,
      type: this.type.value,
      description: document.getElementById("create-description").value,
      payload: { parameters: this.parameters() },
    };
    const numbers = { priority: "create-priority", maxRetries: "create-max-retries", delaySeconds: "create-delay" };
    for (const [field, id] of Object.entries(numbers)) if (value(id) !== "") request[field] = Number(value(id));
    return request;
  }

  async submit() {
    this.clearErrors();
    const button = document.getElementById("create-submit");
    button.disabled = true;
    try {
      const { id } = await call("CreateTask", this.request());
      this.dialog.close();
      this.reset();
      await this.onCreated(id);
    } catch (error) {
      this.showError(error);
    } finally {
      button.disabled = false;
    }
  }

  reset() {
    this.form.reset();
    this.raw.checked = false;
    this.json.hidden = true;
    this.params.hidden = false;
    document.getElementById("create-add-param").hidden = false;
    this.params.replaceChildren();
    this.suggest();
  }

  clearErrors() {
    for (const node of this.form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of this.form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    document.getElementById("create-error").hidden = true;
  }

  /** Puts a message beside the field its path names ("name: ..." -> the name field), else atop the form. */
  showError(error) {
    const path = error instanceof ApiError ? error.field : "";
    const field = FIELD_OF[path.replace(/\[.*$/, "")];
    if (!field) {
      const box = document.getElementById("create-error");
      box.textContent = error.message;
      box.hidden = false;
      return;
    }
    const text = error.message.slice(path.length + 1).trim();
    const note = document.getElementById(`create-${field}-error`);
    note.textContent = field === "payload" && path.includes("[") ? `${path.slice("payload.parameters".length)}: ${text}` : text;
    if (["priority", "max_retries", "delay_seconds"].includes(field)) this.form.querySelector("details.options").open = true;
    const input = this.inputFor(field, /\[(['"])(.*)\1\]$/.exec(path)?.[2]);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  /** The input to mark for a field: for a parameter, the key input of its row (or the JSON text). */
  inputFor(field, key) {
    if (field !== "payload") return this.form.querySelector(`[data-field="${field}"] :is(input, select, textarea)`);
    if (this.raw.checked) return this.json;
    const keys = [...this.params.querySelectorAll(".param-key")];
    return keys.find((k) => k.value.trim() === key) || keys[0] || document.getElementById("create-add-param");
  }
}

/** The key and value inputs of a parameter row. */
function fields(row) {
  return [row.querySelector(".param-key"), row.querySelector(".param-value")];
}

// The input a declared format gets (plugins/declare.py's FORMATS); others take a text box. The form
// does not check them itself (novalidate): the server's answer names the parameter and the rule.
const FORMAT_INPUTS = { email: "email" };

/** A parameter's value input: a list for booleans and enums (empty: the default), else a text box. */
function valueInput(spec, value) {
  const attributes = { class: "param-value", autocomplete: "off" };
  if (spec && (spec.type === "boolean" || spec.type === "enum")) {
    const choices = spec.type === "boolean" ? ["true", "false"] : spec.choices || [];
    const unset = spec.defaultValue !== undefined ? `default: ${spec.defaultValue}` : "choose…";
    const select = h("select", attributes, h("option", { value: "" }, unset),
      ...choices.map((c) => h("option", { value: c }, c)));
    select.value = choices.includes(value) ? value : "";
    return select;
  }
  let placeholder = "value";
  if (spec?.defaultValue !== undefined) placeholder = `default: ${spec.defaultValue}`;
  else if (spec) placeholder = spec.required ? "required" : "optional";
  if (spec?.format && Object.hasOwn(FORMAT_INPUTS, spec.format)) attributes.type = FORMAT_INPUTS[spec.format];
  if (spec?.type === "integer") attributes.inputmode = "numeric";
  if (spec?.type === "number") attributes.inputmode = "decimal";
  if (spec?.required) attributes["aria-required"] = "true";
  return h("input", { ...attributes, value, placeholder });
}

/** "number, required, >= 0: How long to sleep." */
function describe(spec) {
  const rules = [spec.type || "string"];
  if (spec.required) rules.push("required");
  if (spec.format) rules.push(`format ${spec.format}`);
  if (spec.defaultValue !== undefined) rules.push(`default ${spec.defaultValue || "(empty)"}`);
  if (spec.minimum !== undefined) rules.push(`>= ${spec.minimum}`);
  if (spec.maximum !== undefined) rules.push(`<= ${spec.maximum}`);
  if (spec.aliases?.length) rules.push(`also as ${spec.aliases.join(", ")}`);
  return spec.description ? `${rules.join(", ")}: ${spec.description}` : rules.join(", ");
}
