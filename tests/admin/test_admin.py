"""The registry admin, driven like a staff user would."""

import io

import pytest
import skops.io

from registry.models import AliasChange, ModelAlias, ModelVersion


def active_version() -> str:
    return ModelAlias.objects.get(name="production").version.version


def test_version_list_has_filters_and_search(admin_client, two_versions):
    response = admin_client.get("/admin/registry/modelversion/?q=v2.0")
    assert response.status_code == 200
    content = response.content.decode()
    assert "v2.0" in content and "By status" in content


def test_activate_button_asks_first_then_moves_the_alias(admin_client, two_versions):
    v2 = two_versions["v2"]
    change_page = admin_client.get(f"/admin/registry/modelversion/{v2.pk}/change/")
    assert (
        f"/admin/registry/modelversion/{v2.pk}/activate/"
        in change_page.content.decode()
    )
    # the confirmation step changes nothing
    confirm = admin_client.get(f"/admin/registry/modelversion/{v2.pk}/activate/")
    assert confirm.status_code == 200
    assert "Yes, activate" in confirm.content.decode()
    assert active_version() == "v1.0"
    # confirming activates, with a message
    done = admin_client.post(
        f"/admin/registry/modelversion/{v2.pk}/activate/", follow=True
    )
    assert active_version() == "v2.0"
    assert "is now active" in done.content.decode()
    assert AliasChange.objects.first().actor == "admin"


def test_roll_back_button(admin_client, two_versions):
    v2 = two_versions["v2"]
    admin_client.post(f"/admin/registry/modelversion/{v2.pk}/activate/")
    done = admin_client.post(
        f"/admin/registry/modelversion/{v2.pk}/rollback/", follow=True
    )
    assert active_version() == "v1.0"
    assert "rolled back" in done.content.decode()


def test_failed_activation_shows_an_error_message(admin_client, two_versions):
    from tests.conftest import flip_one_byte

    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    v2 = two_versions["v2"]
    done = admin_client.post(
        f"/admin/registry/modelversion/{v2.pk}/activate/", follow=True
    )
    assert active_version() == "v1.0"
    assert "does not match its registered sha256" in done.content.decode()


def test_history_is_visible_on_the_model_page(admin_client, two_versions):
    admin_client.post(f"/admin/registry/modelversion/{two_versions['v2'].pk}/activate/")
    model = two_versions["v1"].model
    page = admin_client.get(f"/admin/registry/registeredmodel/{model.pk}/change/")
    content = page.content.decode()
    assert "alias history" in content.lower()
    assert content.count("v2.0") >= 2


def test_the_active_version_cannot_be_deleted(admin_client, two_versions):
    v1 = two_versions["v1"]
    assert (
        admin_client.get(f"/admin/registry/modelversion/{v1.pk}/delete/").status_code
        == 403
    )
    # the bulk action refuses while the active version is selected...
    admin_client.post(
        "/admin/registry/modelversion/",
        {
            "action": "delete_selected",
            "_selected_action": [v1.pk, two_versions["v2"].pk],
            "post": "yes",
        },
    )
    assert ModelVersion.objects.count() == 2
    # ...and deletes an inactive one
    admin_client.post(
        "/admin/registry/modelversion/",
        {
            "action": "delete_selected",
            "_selected_action": [two_versions["v2"].pk],
            "post": "yes",
        },
    )
    assert list(ModelVersion.objects.values_list("version", flat=True)) == ["v1.0"]


def test_sha256_and_metadata_are_read_only(admin_client, two_versions):
    v1 = two_versions["v1"]
    page = admin_client.get(f"/admin/registry/modelversion/{v1.pk}/change/")
    content = page.content.decode()
    assert v1.sha256 in content
    assert 'name="sha256"' not in content
    assert 'name="metadata"' not in content


def upload(estimator) -> io.BytesIO:
    buffer = io.BytesIO(skops.io.dumps(estimator))
    buffer.name = "uploaded.skops"
    return buffer


def test_upload_registers_and_activates_a_new_version(
    admin_client, two_versions, estimators
):
    response = admin_client.post(
        "/admin/registry/modelversion/add/",
        {
            "model_name": "default",
            "version": "v3.0",
            "display_name": "Model v3.0",
            "artifact": upload(estimators["lr"]),
            "metadata": '{"accuracy": 0.97}',
            "activate": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    v3 = ModelVersion.objects.get(version="v3.0")
    assert v3.artifact_path == "default/v3.0/uploaded.skops"
    assert v3.format == "skops"
    assert v3.accuracy == 0.97
    assert v3.created_by.username == "admin"
    assert active_version() == "v3.0"


@pytest.mark.parametrize("version", ["v1.0", "../x"], ids=["duplicate", "bad-name"])
def test_upload_form_errors_are_shown_not_raised(
    admin_client, two_versions, estimators, version
):
    response = admin_client.post(
        "/admin/registry/modelversion/add/",
        {
            "model_name": "default",
            "version": version,
            "artifact": upload(estimators["lr"]),
        },
    )
    assert response.status_code == 200
    assert "errornote" in response.content.decode()


def test_upload_of_a_non_model_file_is_a_form_error(admin_client, two_versions):
    junk = io.BytesIO(b"not a model")
    junk.name = "junk.pkl"
    response = admin_client.post(
        "/admin/registry/modelversion/add/",
        {"model_name": "default", "version": "v9", "artifact": junk},
    )
    assert response.status_code == 200
    assert "neither a skops file" in response.content.decode()
    assert not ModelVersion.objects.filter(version="v9").exists()


def test_change_pages_show_which_version_is_active(admin_client, two_versions):
    # the flag comes from the row's own query, never from another request
    admin_client.get("/admin/registry/modelversion/")
    admin_client.post(f"/admin/registry/modelversion/{two_versions['v2'].pk}/activate/")
    page = admin_client.get(
        f"/admin/registry/modelversion/{two_versions['v1'].pk}/change/"
    ).content.decode()
    assert 'alt="False"' in page and 'alt="True"' not in page
    page = admin_client.get(
        f"/admin/registry/modelversion/{two_versions['v2'].pk}/change/"
    ).content.decode()
    assert 'alt="True"' in page
