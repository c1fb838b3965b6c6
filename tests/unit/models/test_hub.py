import pytest
from model_repos import GATED, TINY, TINY_FILE

from models.errors import HubAccessError, HubError, HubNotFoundError
from models.hub import HubClient


def test_search_sorts_and_paginates_through_link_headers(client, hub_repos):
    hits = client.search("", limit=5)  # more than one page of 3: the client follows the Link header
    assert [h.repo_id for h in hits] == [TINY, GATED, "someone/other3-GGUF", "someone/other2-GGUF",
                                         "someone/other1-GGUF"]
    assert hits[0].downloads == 500 and hits[1].gated
    assert [h.repo_id for h in client.search("other", sort="likes", limit=2, offset=1)] == [
        "someone/other1-GGUF", "someone/other2-GGUF"]
    assert client.search("nothing-like-this") == []


def test_files_lists_models_with_sizes_sha256_and_shard_groups(client, hub_repos):
    repo = client.files(TINY)
    assert repo.commit == hub_repos.repos[TINY].commit
    by_name = {m.name: m for m in repo.models}
    assert set(by_name) == {TINY_FILE, "tiny.Q8_0.gguf"}
    tiny = by_name[TINY_FILE]
    assert tiny.quant == "Q4_K_M" and tiny.size == len(hub_repos.repos[TINY].files[TINY_FILE])
    assert tiny.first.sha256 == hub_repos.repos[TINY].sha256(TINY_FILE)
    split = by_name["tiny.Q8_0.gguf"]
    assert split.shard_count == 2 and split.complete and len(split.files) == 2


def test_read_header_uses_one_ranged_request_and_reads_only_the_header(client, hub_repos):
    info, read = client.read_header(TINY, TINY_FILE)
    assert info.architecture == "llama" and info.block_count == 2
    size = len(hub_repos.repos[TINY].files[TINY_FILE])
    assert read < size // 10
    gets = hub_repos.file_gets(TINY_FILE)
    assert len(gets) == 1 and gets[0].startswith("bytes=0-")


def test_file_metadata_reads_sha256_from_the_cdn_redirect(client, hub_repos):
    meta = client.file_metadata(TINY, TINY_FILE)
    assert meta.sha256 == hub_repos.repos[TINY].sha256(TINY_FILE)
    assert meta.commit == hub_repos.repos[TINY].commit
    assert meta.size == len(hub_repos.repos[TINY].files[TINY_FILE])


def test_gated_repo_without_token_says_how_to_get_access(client):
    with pytest.raises(HubAccessError, match="gated repository and Ember has no Hub token.*ember models login"):
        client.file_metadata(GATED, "gated.Q4_0.gguf")


def test_gated_repo_with_a_token_lacking_access(hub_repos):
    bad = HubClient(endpoint=hub_repos.endpoint, token="hf_wrong")
    with pytest.raises(HubAccessError, match="token has no access"):
        bad.file_metadata(GATED, "gated.Q4_0.gguf")


def test_gated_repo_with_the_right_token(hub_repos):
    good = HubClient(endpoint=hub_repos.endpoint, token="hf_good_token")
    assert good.file_metadata(GATED, "gated.Q4_0.gguf").size


def test_missing_repo_and_file(client):
    with pytest.raises(HubNotFoundError, match="no repository nobody/nothing"):
        client.files("nobody/nothing")
    with pytest.raises(HubNotFoundError, match="no file"):
        client.file_metadata(TINY, "absent.gguf")


def test_unreachable_hub(hub_repos):
    hub_repos.stop()
    dead = HubClient(endpoint=hub_repos.endpoint, timeout=2)
    with pytest.raises(HubError, match="Cannot reach the Hub"):
        dead.read_header(TINY, TINY_FILE)
