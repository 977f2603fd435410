"""The peer in `cairn-bench agents --peer`: the same agent workload on LangGraph with its
SQLite checkpointer (AsyncSqliteSaver), so the two runtimes are measured side by side.

A StateGraph of two nodes over MessagesState: `model` streams a chat completion from the
benchmark's stand-in model (OpenAI wire format, over httpx) and `tool` makes the requested
HTTP call. Every step is checkpointed to SQLite, as LangGraph does for durable runs. The
stand-in marks when each request arrives and is answered, exactly as for Cairn's runs, so
the overhead per step is measured the same way on both sides.

    python langgraph_agents.py --upstream http://127.0.0.1:PORT --runs 200 --steps 10 --db peer.db

Prints one JSON line: the journal (checkpoint) bytes per step of a 10-step and a 100-step run.
"""

import argparse
import asyncio
import json
import sqlite3

import httpx
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

parser = argparse.ArgumentParser()
parser.add_argument("--upstream", required=True)
parser.add_argument("--runs", type=int, default=200)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--db", required=True)
args = parser.parse_args()

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Looks a thing up.", "parameters": {
    "type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}}}]


def wire(m):
    """A LangChain message in the OpenAI wire format."""
    if isinstance(m, SystemMessage):
        return {"role": "system", "content": m.content}
    if isinstance(m, HumanMessage):
        return {"role": "user", "content": m.content}
    if isinstance(m, ToolMessage):
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
             for c in m.tool_calls]
    out = {"role": "assistant", "content": m.content or None}
    if calls:
        out["tool_calls"] = calls
    return out


def build(client):
    async def model(state: MessagesState):
        body = {"model": "bench", "stream": True, "tools": TOOLS, "messages": [wire(m) for m in state["messages"]]}
        text, calls = "", {}
        async with client.stream("POST", args.upstream + "/v1/chat/completions", json=body) as resp:
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices", []):
                    delta = choice.get("delta", {})
                    text += delta.get("content") or ""
                    for c in delta.get("tool_calls") or []:
                        slot = calls.setdefault(c["index"], {"id": None, "name": "", "arguments": ""})
                        slot["id"] = c.get("id") or slot["id"]
                        f = c.get("function") or {}
                        slot["name"] += f.get("name") or ""
                        slot["arguments"] += f.get("arguments") or ""
        tool_calls = [{"id": c["id"], "name": c["name"], "args": json.loads(c["arguments"] or "{}")}
                      for c in calls.values()]
        return {"messages": [AIMessage(content=text, tool_calls=tool_calls)]}

    async def tool(state: MessagesState):
        out = []
        for call in state["messages"][-1].tool_calls:
            resp = await client.get(call["args"]["url"])
            out.append(ToolMessage(content=resp.text, tool_call_id=call["id"]))
        return {"messages": out}

    def route(state: MessagesState):
        return "tool" if state["messages"][-1].tool_calls else END

    g = StateGraph(MessagesState)
    g.add_node("model", model)
    g.add_node("tool", tool)
    g.add_edge(START, "model")
    g.add_conditional_edges("model", route, ["tool", END])
    g.add_edge("tool", "model")
    return g


async def run_one(app, tag, steps):
    config = {"configurable": {"thread_id": tag}, "recursion_limit": 4 * steps + 10}
    messages = [SystemMessage("Look things up, then answer."), HumanMessage(tag)]
    await app.ainvoke({"messages": messages}, config)


def checkpoint_bytes(db, thread):
    con = sqlite3.connect(db)
    total = 0
    for table, cols in [("checkpoints", "length(checkpoint) + length(metadata)"), ("writes", "length(value)")]:
        row = con.execute(f"SELECT COALESCE(SUM({cols}), 0) FROM {table} WHERE thread_id = ?", (thread,)).fetchone()
        total += row[0]
    con.close()
    return total


async def main():
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client, \
            AsyncSqliteSaver.from_conn_string(args.db) as saver:
        app = build(client).compile(checkpointer=saver)
        await run_one(app, f"peer-warm-{args.steps}", args.steps)
        await asyncio.gather(*(run_one(app, f"peer-{i}-{args.steps}", args.steps) for i in range(args.runs)))
        await run_one(app, "peer-size-10", 10)
        await run_one(app, "peer-size-100", 100)
    print(json.dumps({"bytes_10": checkpoint_bytes(args.db, "peer-size-10") / 10,
                      "bytes_100": checkpoint_bytes(args.db, "peer-size-100") / 100}), flush=True)


asyncio.run(main())
