import pytest

from inference.chat_template import ChatTemplate
from inference.errors import EngineError
from models.gguf import read_gguf
from tests.helpers import starter_path

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_renders_the_model_template():
    template = read_gguf(starter_path()).chat_template
    t = ChatTemplate(template, bos_token="<|im_start|>", eos_token="<|im_end|>", strip_bos=False)
    prompt = t.render(MSGS)
    assert prompt == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                      "<|im_start|>assistant\n")
    assert not t.is_fallback


def test_fallback_is_chatml_and_bos_is_not_doubled():
    t = ChatTemplate("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}",
                     bos_token="<s>", eos_token="</s>", strip_bos=True)
    assert t.render(MSGS) == "[system]Be brief.[user]Hi"
    fallback = ChatTemplate(None, bos_token="<s>", eos_token="</s>", strip_bos=True)
    assert fallback.is_fallback and fallback.render(MSGS).endswith("<|im_start|>assistant\n")


def test_template_errors_are_engine_errors():
    strict = ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}",
                          bos_token="", eos_token="", strip_bos=False)
    with pytest.raises(EngineError, match="user first"):
        strict.render(MSGS)
    with pytest.raises(EngineError, match="not valid Jinja"):
        ChatTemplate("{% for %}", bos_token="", eos_token="", strip_bos=False)
