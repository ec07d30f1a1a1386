"""The model listing: search, filters, sort and pagination over visible models only."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from hub.catalog.models import Model
from frontend.views import MODELS_PER_PAGE
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


def listed_names(response) -> list[str]:
    html = response.content.decode()
    return re.findall(r'<h2><a href="/models/\d+/[^"]+">([^<]+)</a></h2>', html)


@pytest.fixture
def catalogue(alice, bob):
    models = {
        "anime": make_published_model(alice, "Anime Mix", tags=["anime"], type="Checkpoint"),
        "lora": make_published_model(alice, "Ink LoRA", type="LORA", base_model="SDXL 1.0", tags=["ink", "style"]),
        "nsfw": make_published_model(bob, "Spicy Model", nsfw=True),
        "private": make_published_model(bob, "Bob Private", visibility="private"),
        "draft": make_published_model(bob, "Bob Draft", publish=False),
    }
    Model.objects.filter(pk=models["lora"].pk).update(download_count=50)
    Model.objects.filter(pk=models["anime"].pk).update(download_count=7)
    return models


def test_home_and_models_list_public_sfw_models(client, catalogue):
    for url in ("/", "/models/"):
        names = listed_names(client.get(url))
        assert sorted(names) == ["Anime Mix", "Ink LoRA"]


def test_owner_sees_own_private_and_draft_models(client, catalogue, bob):
    client.force_login(bob)
    names = listed_names(client.get("/models/", {"nsfw": "on"}))
    assert sorted(names) == ["Anime Mix", "Bob Draft", "Bob Private", "Ink LoRA", "Spicy Model"]


def test_nsfw_toggle(client, catalogue):
    assert "Spicy Model" not in listed_names(client.get("/models/"))
    assert "Spicy Model" in listed_names(client.get("/models/", {"nsfw": "on"}))


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"query": "ink"}, ["Ink LoRA"]),
        ({"query": "ANIME"}, ["Anime Mix"]),
        ({"query": "style"}, ["Ink LoRA"]),  # a tag name
        ({"query": "alice"}, ["Ink LoRA", "Anime Mix"]),  # a creator
        ({"type": "LORA"}, ["Ink LoRA"]),
        ({"base_model": "SDXL 1.0"}, ["Ink LoRA"]),
        ({"tag": "anime"}, ["Anime Mix"]),
        ({"query": "nothing matches this"}, []),
    ],
)
def test_search_and_filters(client, catalogue, params, expected):
    params = {"sort": "Most Downloaded", **params}
    assert listed_names(client.get("/models/", params)) == expected


def test_sort_orders(client, catalogue):
    assert listed_names(client.get("/models/", {"sort": "Most Downloaded"})) == ["Ink LoRA", "Anime Mix"]
    # Newest first: Ink LoRA was published after Anime Mix.
    assert listed_names(client.get("/models/", {"sort": "Newest"})) == ["Ink LoRA", "Anime Mix"]
    Model.objects.filter(pk=catalogue["lora"].pk).update(download_count=0)
    assert listed_names(client.get("/models/", {"sort": "Most Downloaded"})) == ["Anime Mix", "Ink LoRA"]


def test_invalid_filter_values_fall_back_to_the_plain_listing(client, catalogue):
    response = client.get("/models/", {"type": "<script>", "sort": "Bogus"})
    assert response.status_code == 200
    assert sorted(listed_names(response)) == ["Anime Mix", "Ink LoRA"]
    assert b"<script>" not in response.content


def test_pagination_keeps_filters(client, alice):
    for i in range(MODELS_PER_PAGE + 2):
        make_published_model(alice, f"Paged {i:02d}", tags=["paged"])
    first = client.get("/models/", {"tag": "paged"})
    assert len(listed_names(first)) == MODELS_PER_PAGE
    html = first.content.decode()
    assert "Page 1 of 2" in html
    assert 'href="?tag=paged&amp;page=2"' in html
    second = client.get("/models/", {"tag": "paged", "page": 2})
    assert len(listed_names(second)) == 2
    assert set(listed_names(first)).isdisjoint(listed_names(second))
    # Past the end shows the last page rather than an error.
    assert client.get("/models/", {"tag": "paged", "page": 99}).status_code == 200


def test_listing_query_count_does_not_grow_with_page_size(client, alice, django_assert_max_num_queries):
    for i in range(12):
        make_published_model(alice, f"Counted {i}", tags=["a", "b"])
    with django_assert_max_num_queries(8):
        response = client.get(reverse("frontend:models"))
    assert len(listed_names(response)) == 12


def test_cards_show_creator_type_base_model_downloads_and_tags(client, catalogue):
    html = client.get("/models/", {"query": "ink"}).content.decode()
    assert 'href="/users/alice/"' in html
    assert ">LORA<" in html and ">SDXL 1.0<" in html
    assert ">ink<" in html and ">style<" in html
    # Each tag chip lists the models with that tag.
    assert '<a class="tag" href="/models/?tag=ink">ink</a>' in html


def test_base_model_filter_shows_the_names_the_api_uses(client, catalogue):
    html = client.get("/models/").content.decode()
    for label in ("SD 1.5", "SDXL 1.0", "Flux.1 D", "SD 3.5"):
        assert f'">{label}</option>' in html
    assert "Sd 1 5" not in html and "Sdxl" not in html and "Flux 1 D" not in html
    assert "50 <span class=\"visually-hidden\">downloads</span>" in html
