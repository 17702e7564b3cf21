"""docs/no-code.md: the request it gives is one the API accepts, and its sample answer is the bundled model's
(written from the real service by `make events`)."""

import json
import re

from conftest import ROOT
from handler.schemas import EditRequest, EditResponse, FaceEdit

DOC = (ROOT / "docs" / "no-code.md").read_text()


def json_blocks() -> list[str]:
    return re.findall(r"```json\n(.*?)\n```", DOC, re.S)


def test_the_request_body_is_valid():
    body = json.loads(json_blocks()[0])
    request = EditRequest.model_validate(body)
    assert request.output == "url" and body["image_url"].startswith("https://")


def test_the_sample_answer_is_the_bundled_models():
    block = re.search(r"<!-- sample: edit-url-answer[^>]*-->\n```json\n(.*?)\n```", DOC, re.S)
    assert block, "the sample answer block is missing from docs/no-code.md"
    answer = json.loads(block.group(1))
    card = json.loads((ROOT / "layers" / "model" / "model_card.json").read_text())
    assert answer["model"]["version"] == card["version"], "docs/no-code.md is stale: run `make events`"
    assert set(answer) <= set(EditResponse.model_fields) | {"image_url", "expires_at"}
    assert {"image_url", "expires_at"} <= set(answer) and "image_base64" not in answer
    assert set(answer["faces"][0]) <= set(FaceEdit.model_fields)
