"""The main window. It only builds the widgets and connects their signals (in :meth:`MainWindow._build`)."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (QMainWindow, QPushButton, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from app.services.chat import context_notice
from app.services.conversation_settings import ConversationSettings
from app.services.models import ModelServices
from app.services.surface import Core, router_of
from app.settings import Settings
from storage.presets import PresetStore
from ui.background import Background
from ui.banner import Banner
from ui.chat_session import ChatSession
from app.services.chat_extras import merge as merge_extras
from ui.chat_extras_bar import ChatExtrasBar, FileDrops
from ui.chat_files import ChatFiles
from ui.chat_tools import ChatTools
from ui.chat_view import ChatView
from ui.composer import Composer
from ui.downloads_controller import DownloadsController
from ui.downloads_panel import DownloadsPanel
from ui.draft_choice import draft_options
from ui.library_page import LibraryPage
from ui.conversation_list import ConversationList
from ui.conversation_files import ConversationFiles
from ui.conversation_settings import ConversationSettingsDialog
from ui.icon import app_icon
from ui.model_loader import ModelLoader
from ui.model_picker import ModelPicker
from ui.settings_dialog import SettingsDialog
from ui.theme import ThemeManager
from ui.window_state import WindowState

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Conversation list on the left; chat, library and downloads pages on the right.

    Signals: ``quitRequested()`` (a close that is not hidden to the tray), ``settingsChanged(settings)``.
    """

    quitRequested = Signal()
    settingsChanged = Signal(object)

    def __init__(self, core: Core, services: ModelServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.services = services  # made by the composition root (app.desktop)
        self.hide_on_close = False  # set by the tray wiring when a tray icon is shown
        self.state = WindowState(core.paths.home)
        self._build()

    def _build(self) -> None:
        core = self.core
        self.setWindowTitle("Ember")
        self.setWindowIcon(app_icon())
        self.theme = ThemeManager(self)
        self.theme.apply(core.settings.desktop.theme)
        self.resize(1120, 740)
        self.background = Background(self)
        self.session = ChatSession(core, self)
        self.loader = ModelLoader(core.engine, self.background, core.model_spec, self,
                                  drafts_for=lambda name: draft_options(core, name))

        # widgets
        self.conversations = ConversationList(core.conversations)
        self.library_button = QPushButton("Library")
        self.library_button.setToolTip("Installed models, Hub search and import (Ctrl+L)")
        self.downloads_button = QPushButton("Downloads")
        self.downloads_button.setToolTip("Model downloads: progress, pause, resume")
        self.settings_button = QPushButton("Settings")
        self.settings_button.setToolTip("Settings (Ctrl+,)")
        sidebar = QWidget()
        sidebar.setObjectName("sidebar")
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(0, 0, 0, 8)
        side.addWidget(self.conversations, 1)
        for button in (self.library_button, self.downloads_button, self.settings_button):
            side.addWidget(button)
            button.setFlat(True)
        side.setSpacing(2)

        self.picker = ModelPicker()
        self.chat_view = ChatView()
        self.banner = Banner()
        self.composer = Composer()
        self.extras_bar = ChatExtrasBar()
        chat_page = QWidget()
        chat = QVBoxLayout(chat_page)
        chat.setContentsMargins(0, 0, 0, 0)
        chat.setSpacing(0)
        chat.addWidget(self.picker)
        chat.addWidget(self.chat_view, 1)
        chat.addWidget(self.extras_bar)
        chat.addWidget(self.composer)
        self.pages = QStackedWidget()
        self.pages.addWidget(chat_page)
        self.chat_page = chat_page
        self.extra_pages: dict[str, QWidget] = {}
        services = self.services
        self.library_page = LibraryPage(core, self.background, hub=services.hub, machine=services.machine)
        self.add_page("library", self.library_page)
        self.downloads_panel = DownloadsPanel()
        self.add_page("downloads", self.downloads_panel)
        manager = services.downloads
        self.downloads = (DownloadsController(manager, self.downloads_panel, self.background, self) if manager
                          else None)
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.pages, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([250, 870])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.statusBar().setSizeGripEnabled(False)

        # conversations
        s = self.session
        self.conversations.newRequested.connect(s.new)
        self.conversations.conversationSelected.connect(s.open)
        self.conversations.conversationDeleted.connect(
            lambda cid: s.new() if cid == s.conversation_id else None)
        s.conversationOpened.connect(self._conversation_opened)
        s.conversationsChanged.connect(self.conversations.refresh)
        s.conversationsChanged.connect(lambda: self.conversations.set_current(s.conversation_id))
        self.conversation_files = ConversationFiles(core.conversations, self.background, self)
        self.conversations.exportRequested.connect(self.conversation_files.ask_export)
        self.conversations.importRequested.connect(self.conversation_files.ask_import)
        self.conversation_files.exported.connect(lambda path: self.show_notice(f"Exported to {path}."))
        self.conversation_files.imported.connect(self._conversation_imported)
        self.conversation_files.error.connect(self.show_error)

        # chat
        self.composer.sendRequested.connect(lambda text: self.files.send(text))  # files: question embedded first
        self.composer.stopRequested.connect(s.stop)
        self.composer.settingsRequested.connect(self.edit_conversation_settings)
        self.chat_view.regenerateRequested.connect(s.regenerate)
        self.chat_view.askLargeRequested.connect(s.ask_large)
        self.chat_view.editSubmitted.connect(s.edit_and_resend)
        self.chat_view.versionRequested.connect(s.switch_version)
        self.chat_view.openLibraryRequested.connect(lambda: self.show_page("library"))
        s.replyStarted.connect(self.chat_view.begin_reply)
        s.replyStarted.connect(lambda *_: self.chat_view.set_versions(s.versions()))
        s.replyStarted.connect(lambda *_: self.banner.hide())
        s.replyText.connect(self.chat_view.append_text)
        s.replyRetracted.connect(self.chat_view.retract_reply)
        s.replyFinished.connect(self.chat_view.finish_reply)
        s.replyFinished.connect(lambda _: self.chat_view.set_versions(s.versions()))
        s.replyFinished.connect(lambda _: self.picker.set_loaded(self.loader.loaded_name))
        s.replyFinished.connect(self._reply_finished)
        s.busyChanged.connect(self.composer.set_busy)
        s.loadProgress.connect(lambda f: (self.picker.set_loading(f < 1.0), self.picker.set_progress(f)))
        s.error.connect(self.show_error)

        # MCP tools and files in the chat
        self.tools = ChatTools(core, s, self.chat_view, self)
        self.files = ChatFiles(core, s, self.chat_view, self.background, self)
        s.extras = lambda conv, text, follow_up: merge_extras(
            self.tools.extras(conv, follow_up), None if follow_up else self.files.extras(conv, text))
        s.replyStarted.connect(lambda *_: self.files.show_sources())
        s.replyFinished.connect(self.tools.show_calls)
        s.conversationOpened.connect(self.tools.show_conversation)
        s.conversationOpened.connect(self.files.conversation_opened)
        s.conversationOpened.connect(lambda _: self._refresh_tools())
        self.tools.toolsChanged.connect(self._refresh_tools)
        self.tools.error.connect(self.show_error)
        self.extras_bar.serverToggled.connect(self.tools.set_enabled)
        self.extras_bar.filesChosen.connect(self.files.attach_files)
        self.extras_bar.removeRequested.connect(self.files.remove)
        self.composer.filesGiven.connect(self.files.attach_files)
        self.drops = FileDrops(self.chat_view)
        self.drops.filesDropped.connect(self.files.attach_files)
        self.files.pendingChanged.connect(self.extras_bar.set_pending)
        self.files.busyChanged.connect(self.extras_bar.set_reading)
        self.files.notice.connect(self.show_info)
        self.files.error.connect(self.show_error)
        self.settingsChanged.connect(self.tools.apply_settings)
        self._refresh_tools()

        # models
        self.picker.modelSelected.connect(s.set_model)
        self.picker.modelSelected.connect(self.find_drafts)
        self.picker.draft.changed.connect(s.set_draft)
        self.picker.router.set_settings(core.settings.router)
        self.picker.router.changed.connect(s.set_route)
        self.loader.draftsFound.connect(self._drafts_found)
        self.picker.loadRequested.connect(self.loader.load_name)
        self.picker.loadRequested.connect(s.set_model)
        self.picker.unloadRequested.connect(self.loader.unload)
        self.picker.cancelRequested.connect(self.loader.cancel)
        self.loader.busyChanged.connect(self.picker.set_loading)
        self.loader.progress.connect(self.picker.set_progress)
        self.loader.loaded.connect(self.picker.set_loaded)
        self.loader.loaded.connect(self.chat_view.empty.set_model)
        self.loader.loaded.connect(lambda name: self.statusBar().showMessage(f"{name} is loaded.", 5000))
        self.loader.unloaded.connect(lambda: self.picker.set_loaded(None))
        self.loader.unloaded.connect(lambda: self.chat_view.empty.set_model(None))
        self.loader.cancelled.connect(lambda: self.statusBar().showMessage("Model load cancelled.", 5000))
        self.loader.failed.connect(self.show_error)
        for ended in (self.loader.cancelled, self.loader.failed):
            ended.connect(lambda *_: self.picker.set_loaded(self.loader.loaded_name))

        # library and downloads
        lib = self.library_page
        lib.modelsChanged.connect(self.refresh_models)
        lib.useRequested.connect(self.use_model)
        lib.error.connect(self.show_error)
        lib.notice.connect(self.show_notice)
        if self.downloads is not None:
            lib.downloadRequested.connect(self.downloads.download)  # queued off the GUI thread
            self.downloads.queued.connect(lambda dl: self.show_notice(
                f"Downloading {dl.model_file} from {dl.repo_id}: see Downloads."))
            self.downloads.finished.connect(lambda _: (lib.refresh(), self.refresh_models()))
            self.downloads.finished.connect(lambda name: self.show_notice(f"{name} downloaded and added."))
            self.downloads.failed.connect(self.show_error)
        else:
            lib.downloadRequested.connect(lambda *_: self.show_error("Downloads are not available."))

        # navigation and keys
        self.library_button.clicked.connect(lambda: self.show_page("library"))
        self.downloads_button.clicked.connect(lambda: self.show_page("downloads"))
        self.settings_button.clicked.connect(self.open_settings)
        for keys, slot in ((QKeySequence.StandardKey.New, self.new_chat),
                           ("Ctrl+K", self.conversations.focus_search),
                           ("Ctrl+L", lambda: self.show_page("library")),
                           ("Ctrl+,", self.open_settings)):
            QShortcut(QKeySequence(keys), self, activated=slot)
        self.refresh_models()

    # -- glue ----------------------------------------------------------------------------------------------------

    def start(self, *, load_model: bool = True) -> None:
        """Restore the layout, show the window, start the download queue, load the default model in the background."""
        self.state.restore(self, self.splitter)
        self.show()
        self.composer.input.setFocus()
        if self.downloads is not None:
            self.downloads.start()  # downloads left queued by an earlier run continue
        if load_model and self.session.model_name:
            self.loader.load_name(self.session.model_name)

    def add_page(self, name: str, page: QWidget) -> None:
        """Add a page (library, downloads) that :meth:`show_page` can switch to."""
        self.extra_pages[name] = page
        self.pages.addWidget(page)

    def show_page(self, name: str) -> None:
        """Switch the right-hand side to ``chat`` or a page added with :meth:`add_page`."""
        page = self.extra_pages.get(name, self.chat_page)
        self.pages.setCurrentWidget(page)

    def new_chat(self) -> None:
        """Open an empty new chat and put the cursor in the composer."""
        self.show_page("chat")
        self.session.new()
        self.composer.input.setFocus()

    def show_error(self, message: str) -> None:
        """Show a known error in the window (the banner above the composer) and the status bar."""
        log.info("shown to the user: %s", message)
        self.banner.show_message(message)

    def show_info(self, message: str) -> None:
        """A notice that stays until dismissed (the banner, neutral colours)."""
        log.info("notice: %s", message)
        self.banner.show_message(message, kind="info")

    def show_notice(self, message: str) -> None:
        """A passing notice in the status bar."""
        self.statusBar().showMessage(message, 15000)

    def refresh_models(self) -> None:
        """Reload the model list of the picker from the library."""
        self.picker.set_models(self.core.library.list(), self.session.model_name)
        self.session.set_model(self.picker.current() or self.session.model_name)
        self.find_drafts(self.session.model_name)

    def find_drafts(self, name: str) -> None:
        """Offer off and lookup now, and the library models that can draft for ``name`` once they are known."""
        self.picker.draft.set_checking()
        self.loader.find_drafts(name)

    def use_model(self, name: str) -> None:
        """Select a library model in the chat and load it."""
        self.picker.select(name)
        self.session.set_model(name)
        self.find_drafts(name)
        self.show_page("chat")
        self.loader.load_name(name)

    def apply_settings(self, settings: Settings) -> None:
        """Use saved settings from now on (new loads and new chats pick them up); start on login is set up."""
        from app.services.autostart import apply_start_on_login

        self.core.settings = settings
        self.theme.apply(settings.desktop.theme)
        try:
            apply_start_on_login(settings.desktop.start_on_login)
        except OSError as exc:
            self.show_error(f"Start on login could not be changed: {exc}")
        self.settingsChanged.emit(settings)

    def open_settings(self) -> SettingsDialog:
        """Open the settings dialog (non-blocking)."""
        dialog = SettingsDialog(self.core.settings, self.core.paths.settings, self.core.paths.home, self,
                                reset_learning=lambda: router_of(self.core).reset_learning())
        dialog.saved.connect(self.apply_settings)
        dialog.saved.connect(lambda _: self.show_notice("Settings saved."))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def edit_conversation_settings(self) -> ConversationSettingsDialog:
        """Open the system prompt and sampling dialog of the open conversation (non-blocking)."""
        conv = self.session.conversation()
        prompt = ConversationSettings.of(conv.settings, conversation_id=conv.id).system_prompt if conv else None
        if prompt is None:
            prompt = self.core.settings.chat.system_prompt
        dialog = ConversationSettingsDialog(prompt, self.session.options(), self,
                                            presets=PresetStore(self.core.conversations.database))
        dialog.accepted.connect(lambda: self.session.update_settings(
            system_prompt=dialog.result_values[0], sampling=dialog.result_values[1]))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _refresh_tools(self) -> None:
        t = self.tools
        self.extras_bar.set_servers(t.servers(), t.enabled(), {n: [x.name for x in ts] for n, ts in t.tools.items()},
                                    t.failed)

    def _drafts_found(self, options: Any) -> None:
        if options.model == self.session.model_name:
            self.picker.draft.set_options(options)

    def _reply_finished(self, message: Any) -> None:
        """Say once per conversation that its earliest turns no longer fit the model's context."""
        if message is None or not message.stats.get("trimmed_messages"):
            return
        notice = context_notice(self.core, message.conversation_id)
        if notice:
            self.show_info(notice)

    def _conversation_imported(self, conversation_id: int) -> None:
        """Show the conversation just imported."""
        self.conversations.refresh()
        self.session.open(conversation_id)
        self.show_notice(f"Imported “{self.core.conversations.get(conversation_id).title}”.")

    def _conversation_opened(self, conversation_id: int) -> None:
        self.show_page("chat")
        route = self.session.route
        if route is not None and route.policy:
            self.picker.router.show_route(route.policy, route.large or "")
        else:
            self.picker.router.set_settings(self.core.settings.router)
        self.banner.hide()
        self.chat_view.show_messages(self.session.messages(), self.session.versions())
        self.conversations.set_current(conversation_id or None)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Esc stops the reply from anywhere in the window (a key no child widget used)."""
        if event.key() == Qt.Key.Key_Escape and self.session.busy:
            self.session.stop()
            return
        super().keyPressEvent(event)

    # -- lifetime ------------------------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Hide to the tray when configured and a tray icon is shown; otherwise ask the app to quit."""
        self.state.save(self, self.splitter)
        if self.hide_on_close and self.core.settings.desktop.close_to_tray:
            event.ignore()
            self.hide()
            return
        event.accept()
        self.quitRequested.emit()

    def shutdown(self) -> None:
        """Stop a running reply, save the layout and wait for background jobs (before the engine stops)."""
        self.state.save(self, self.splitter)
        self.session.shutdown()
        self.tools.shutdown()
        if self.downloads is not None:
            self.downloads.shutdown()
        self.background.shutdown()

