"""Drives a running Cairn with the official OpenAI Python SDK, changing only base_url and api_key.

Usage: python openai_sdk_check.py BASE_URL API_KEY   (Cairn configured as in tests/api/main.rs)
"""
import sys

import openai
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
messages = [{"role": "user", "content": "Say hello"}]
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]

# Non-streaming, with the common sampling parameters.
r = client.chat.completions.create(model="fast", messages=messages, max_tokens=20, temperature=0,
                                   top_p=1, seed=1, stop=["\n\n"], user="sdk-test")
assert r.choices[0].message.content == "Hello from the stand-in.", r
assert r.usage.total_tokens == 15, r.usage

# Streaming with usage.
parts, usage = [], None
for chunk in client.chat.completions.create(model="fast", messages=messages, stream=True,
                                            stream_options={"include_usage": True}):
    if chunk.choices:
        parts.append(chunk.choices[0].delta.content or "")
    if chunk.usage:
        usage = chunk.usage
assert "".join(parts) == "Hello from the stand-in.", parts
assert usage is not None and usage.completion_tokens == 4, usage

# Tools, both providers, both modes.
for model in ("fast", "claude"):
    r = client.chat.completions.create(model=model, messages=messages, tools=tools, tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "Oslo" in call.function.arguments, r
    args = ""
    for chunk in client.chat.completions.create(model=model, messages=messages, tools=tools, stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += tc.function.arguments or ""
    assert "Oslo" in args, args

# JSON mode passes through.
r = client.chat.completions.create(model="fast", messages=messages, response_format={"type": "json_object"})
assert r.choices[0].finish_reason == "stop"

# Embeddings: the SDK asks for base64 by default and decodes it.
e = client.embeddings.create(model="embed", input=["a b", "ccc"])
assert len(e.data) == 2 and len(e.data[1].embedding) == 4, e
assert abs(e.data[1].embedding[0] - 0.3) < 1e-6, e.data[1].embedding
e = client.embeddings.create(model="embed", input="one", encoding_format="float", dimensions=3)
assert len(e.data[0].embedding) == 3

# Models.
assert "fast" in [m.id for m in client.models.list()]

# Errors map to the SDK's typed exceptions.
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("expected NotFoundError")
except openai.NotFoundError as err:
    assert err.code == "model_not_found", err
try:
    client.chat.completions.create(model="fast", messages=messages, temperature=5)
    raise AssertionError("expected BadRequestError")
except openai.BadRequestError as err:
    assert err.param == "temperature", err
try:
    OpenAI(base_url=base + "/v1", api_key="sk-cairn-wrong", max_retries=0).models.list()
    raise AssertionError("expected AuthenticationError")
except openai.AuthenticationError:
    pass

print("openai SDK", openai.__version__, "OK")
