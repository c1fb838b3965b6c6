"""MCP servers are declared in the settings dialog's generated form (one ``name = command line`` per line)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import McpSettings
from ui.settings_form import SettingsForm


def test_servers_are_edited_one_per_line_and_bad_lines_refused(qtbot):
    form = SettingsForm(McpSettings, McpSettings(servers={"web": "https://example.org/mcp"}))
    qtbot.addWidget(form)
    editor = form.editors["servers"]
    assert editor.toPlainText().strip() == "web = https://example.org/mcp"
    editor.setPlainText("web = https://example.org/mcp\nnotes = NOTES=/tmp/n python -m notes_server")
    settings = McpSettings.model_validate(form.values())
    assert settings.servers == {"web": "https://example.org/mcp", "notes": "NOTES=/tmp/n python -m notes_server"}
    editor.setPlainText("notes = NOTES=/tmp/n")
    with pytest.raises(ValidationError, match="give a command that starts it"):
        McpSettings.model_validate(form.values())
