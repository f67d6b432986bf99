"""Imports the agents engram generated and checks them against the assistants they came from.

Usage: agents_check.py OUT_DIR EXPECTED_JSON
  OUT_DIR        the directory engram wrote (it holds the package `migrated_agents`)
  EXPECTED_JSON  {"assistants": [assistant objects as the API serves them],
                  "scopes": {assistant_id: "tenant/project"},
                  "recall": [{"assistant_id", "task", "expect"}]   (optional)}

Run with the venv of scripts/requirements-agents.txt (OpenAI Agents SDK + Engramia 0.7).
For every assistant: the module imports with the SDK and Engramia; `agent` is an `Agent` with
the assistant's name, model and model settings; its instructions, as the SDK calls them (through
`engramia_instructions`, with no task so nothing is recalled), equal the assistant's
instructions; its tools are the assistant's, in order; each function tool's parameter schema, as
the SDK derives it from the generated signature, matches the original in property names, types,
required fields, enums and descriptions; strict tools stay strict; a json_schema response format
is the agent's output_type with the same schema. Where the generated type is `Any` (or an open
`dict`), the generator named what it could not map, and that part is not compared.
`recall` entries recall `task` through the module's scoped memory and expect a pattern whose task
contains `expect` (and only patterns of the agent's own scope).

Prints one JSON object: {"modules", "tools", "schemas", "errors": [...]}.
"""

import asyncio
import importlib
import json
import sys

from agents import Agent, AgentOutputSchema, FunctionTool, RunContextWrapper

ANY = {"any": True}


def pointer(root, ref):
    node = root
    for part in ref.lstrip("#").split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def literal_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    return "string"


def proj(s, root, depth=0):
    """What is compared of a schema: types, enums, properties, required, items, descriptions."""
    if depth > 60:
        return ANY
    seen = set()
    while isinstance(s, dict) and isinstance(s.get("$ref"), str) and s["$ref"].startswith("#"):
        if s["$ref"] in seen:
            return ANY
        seen.add(s["$ref"])
        try:
            s = pointer(root, s["$ref"])
        except (KeyError, IndexError, ValueError):
            return ANY
    if not isinstance(s, dict):
        return ANY
    if isinstance(s.get("allOf"), list) and len(s["allOf"]) == 1:
        return proj(s["allOf"][0], root, depth + 1)
    variants = s.get("anyOf") if isinstance(s.get("anyOf"), list) else s.get("oneOf")
    if isinstance(variants, list):
        return union([proj(v, root, depth + 1) for v in variants])
    enum = [s["const"]] if "const" in s else s.get("enum")
    if isinstance(enum, list):
        values = [v for v in enum if v is not None]
        if not all(isinstance(v, (str, int, bool)) and not isinstance(v, float) for v in values):
            s = {k: v for k, v in s.items() if k not in ("enum", "const")}
        else:
            out = [] if not values else [{"enum": sorted(json.dumps(v) for v in values)}]
            if len(values) < len(enum):
                out.append({"type": "null"})
            return union(out)
    t = s.get("type")
    if isinstance(t, list):
        return union([proj({**s, "type": x}, root, depth + 1) for x in t])
    if t is None:
        t = "object" if "properties" in s else "array" if "items" in s else None
    if t is None:
        return ANY
    out = {"type": t}
    if t == "object":
        props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
        if not props and s.get("additionalProperties", True) is not False:
            ap = s.get("additionalProperties")
            return {"type": "object", "values": proj(ap, root, depth + 1)} if isinstance(ap, dict) else ANY
        required = [r for r in s.get("required", []) if isinstance(r, str) and r in props] if isinstance(s.get("required"), list) else []
        out["required"] = sorted(required)
        out["properties"] = {}
        for name, p in props.items():
            pp = proj(p, root, depth + 1)
            if name not in required and isinstance(pp, dict):
                pp = {k: v for k, v in pp.items() if k != "nullable"}
            if isinstance(p, dict) and isinstance(p.get("description"), str) and pp is not ANY:
                pp = {**pp, "description": p["description"]}
            out["properties"][name] = pp
    if t == "array":
        items = s.get("items")
        out["items"] = proj(items, root, depth + 1) if isinstance(items, dict) else ANY
    return out


def union(parts):
    nullable = any(p == {"type": "null"} for p in parts)
    rest = [p for p in parts if p != {"type": "null"}]
    if any(p is ANY or p == ANY for p in rest):
        return ANY
    if not rest:
        return {"type": "null"}
    if len(rest) == 1:
        one = dict(rest[0])
    else:
        # Literal values of one union are one enum, whichever way they were grouped.
        if all(set(p) == {"enum"} for p in rest):
            one = {"enum": sorted(v for p in rest for v in p["enum"])}
        else:
            one = {"union": sorted(json.dumps(p, sort_keys=True) for p in rest)}
    if nullable:
        one["nullable"] = True
    return one


def same(a, b, path, errors):
    """Compares projections; `ANY` on the generated side is a part the generator noted."""
    if b is ANY or b == ANY:
        return
    if a is ANY or a == ANY:
        errors.append(f"{path}: the original accepts anything, the generated schema {json.dumps(b)}")
        return
    if set(a) != set(b) and not (set(a) ^ set(b)) <= {"description"}:
        errors.append(f"{path}: original {json.dumps(a, sort_keys=True)} != generated {json.dumps(b, sort_keys=True)}")
        return
    for k in sorted(set(a) | set(b)):
        if k == "properties":
            if list(a[k]) != list(b[k]):
                errors.append(f"{path}: properties {list(a[k])} != {list(b[k])}")
                continue
            for name in a[k]:
                same(a[k][name], b[k][name], f"{path}.{name}", errors)
        elif k in ("items", "values"):
            same(a[k], b[k], f"{path}[]", errors)
        elif a.get(k) != b.get(k):
            errors.append(f"{path}: {k} {json.dumps(a.get(k))} != {json.dumps(b.get(k))}")


def main():
    out_dir, expected_path = sys.argv[1], sys.argv[2]
    expected = json.load(open(expected_path, encoding="utf-8"))
    sys.path.insert(0, out_dir)
    package = importlib.import_module("migrated_agents")
    errors, tools_checked, schemas = [], 0, 0
    modules = 0
    for a in expected["assistants"]:
        aid = a["id"]
        agent = package.BY_ASSISTANT_ID.get(aid)
        if agent is None:
            errors.append(f"{aid}: no agent")
            continue
        module = next(m for m in package.AGENTS if package.AGENTS[m] is agent)
        mod = importlib.import_module(f"migrated_agents.{module}")
        modules += 1
        where = f"{aid} ({module})"
        if not isinstance(agent, Agent):
            errors.append(f"{where}: agent is {type(agent)}")
            continue
        if agent.name != (a.get("name") or aid):
            errors.append(f"{where}: name {agent.name!r}")
        if a.get("model") and agent.model != a["model"]:
            errors.append(f"{where}: model {agent.model!r} != {a['model']!r}")
        want = a.get("instructions") or ""
        got = asyncio.run(agent.instructions(RunContextWrapper(context=None), agent))
        if got != want or mod.INSTRUCTIONS != want:
            errors.append(f"{where}: instructions {got!r} != {want!r}")
        scope = expected["scopes"].get(aid)
        if scope is not None and f"{mod.TENANT}/{mod.PROJECT}" != scope:
            errors.append(f"{where}: scope {mod.TENANT}/{mod.PROJECT} != {scope}")
        if scope is not None and mod.memory.scope.tenant_id + "/" + mod.memory.scope.project_id != scope:
            errors.append(f"{where}: memory bound to {mod.memory.scope}")
        for key in ("temperature", "top_p"):
            v = a.get(key)
            expect = None if v is None or v == 1.0 else v
            if getattr(agent.model_settings, key) != expect:
                errors.append(f"{where}: {key} {getattr(agent.model_settings, key)} != {expect}")
        originals = [t for t in a.get("tools", []) if t.get("type") in ("function", "code_interpreter") and (t.get("type") != "function" or t.get("function"))]
        want_names = [t["function"]["name"] if t["type"] == "function" else "code_interpreter" for t in originals]
        got_names = [t.name for t in agent.tools]
        if got_names != want_names:
            errors.append(f"{where}: tools {got_names} != {want_names}")
            continue
        for original, tool in zip(originals, agent.tools):
            tools_checked += 1
            if original["type"] != "function":
                continue
            f = original["function"]
            if not isinstance(tool, FunctionTool):
                errors.append(f"{where}: {f['name']} is {type(tool)}")
                continue
            if (tool.description or "") != (f.get("description") or ""):
                errors.append(f"{where}: {f['name']} description {tool.description!r}")
            if f.get("strict") is True and not tool.strict_json_schema and f.get("expect_strict", True):
                errors.append(f"{where}: {f['name']} was strict, is not")
            params = f.get("parameters")
            if isinstance(params, dict) and "properties" in params:
                schemas += 1
                same(proj(params, params), proj(tool.params_json_schema, tool.params_json_schema), f"{where}: {f['name']}", errors)
        rf = a.get("response_format")
        if isinstance(rf, dict) and rf.get("type") == "json_schema":
            schema = rf["json_schema"].get("schema")
            if not isinstance(agent.output_type, AgentOutputSchema):
                errors.append(f"{where}: output_type {agent.output_type!r}")
            else:
                schemas += 1
                derived = agent.output_type.json_schema()
                same(proj(schema, schema), proj(derived, derived), f"{where}: response_format", errors)
    for r in expected.get("recall", []):
        agent = package.BY_ASSISTANT_ID[r["assistant_id"]]
        module = next(m for m in package.AGENTS if package.AGENTS[m] is agent)
        mod = importlib.import_module(f"migrated_agents.{module}")
        matches = mod.memory.recall(task=r["task"], limit=3)
        tasks = [m.pattern.task for m in matches]
        if not tasks or r["expect"] not in tasks[0]:
            errors.append(f"recall {r['task']!r} through {module}: {tasks}")
        for other in r.get("not", []):
            if any(other in t for t in tasks):
                errors.append(f"recall through {module} returned another scope's pattern: {tasks}")
    print(json.dumps({"modules": modules, "tools": tools_checked, "schemas": schemas, "errors": errors}))


if __name__ == "__main__":
    main()
