"""The sidebar list of conversations: new, search (titles and full text), rename, delete, export and import."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLineEdit, QListWidget, QListWidgetItem, QMenu, QPushButton, QVBoxLayout, QWidget

from storage.conversations import ConversationStore
from ui import dialogs

ID_ROLE = Qt.ItemDataRole.UserRole


class ConversationList(QWidget):
    """Signals: ``conversationSelected(id)``, ``newRequested()``, ``conversationDeleted(id)``,
    ``exportRequested(id, format)`` (``markdown`` or ``json``), ``importRequested()``."""

    conversationSelected = Signal(int)
    newRequested = Signal()
    conversationDeleted = Signal(int)
    exportRequested = Signal(int, str)
    importRequested = Signal()

    def __init__(self, store: ConversationStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self.new_button = QPushButton("New chat")
        self.new_button.setObjectName("primary")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.search = QLineEdit()
        self.search.setAccessibleName("Search chats")
        self.search.setPlaceholderText("Search chats (Ctrl+K)")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setEditTriggers(QListWidget.EditTrigger.EditKeyPressed)
        self.list.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 0)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        self._current: int | None = None
        self._filling = False
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self.new_button.clicked.connect(self.newRequested.emit)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_edited)
        self.list.customContextMenuRequested.connect(self._menu)
        delete = QAction("Delete", self.list, shortcut=QKeySequence.StandardKey.Delete)
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(lambda: self._delete_current())
        self.list.addAction(delete)
        self.refresh()

    # -- contents ------------------------------------------------------------------------------------------------

    def ids(self) -> list[int]:
        """Conversation ids in the order shown."""
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def refresh(self) -> None:
        """Reload from the store, applying the search box."""
        query = self.search.text().strip()
        self._filling = True
        self.list.clear()
        for conv_id, title, snippet in self._rows(query):
            item = QListWidgetItem(title if not snippet else f"{title}\n{snippet}")
            item.setData(ID_ROLE, conv_id)
            item.setToolTip(snippet or title)
            if not snippet:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if conv_id == self._current:
                self.list.setCurrentItem(item)
        self._filling = False

    def _rows(self, query: str) -> list[tuple[int, str, str]]:
        conversations = self._store.list()
        if not query:
            return [(c.id, c.title, "") for c in conversations]
        titles = {c.id: c.title for c in conversations}
        rows: dict[int, tuple[int, str, str]] = {}
        lowered = query.lower()
        for c in conversations:
            if lowered in c.title.lower():
                rows[c.id] = (c.id, c.title, "")
        for hit in self._store.search(query):
            if hit.conversation_id not in rows and hit.conversation_id in titles:
                snippet = " ".join(hit.snippet.split())
                rows[hit.conversation_id] = (hit.conversation_id, titles[hit.conversation_id], snippet)
        return list(rows.values())

    def set_current(self, conversation_id: int | None) -> None:
        """Highlight the open conversation (without emitting ``conversationSelected``)."""
        self._current = conversation_id
        self._filling = True
        self.list.setCurrentRow(-1)
        for i in range(self.list.count()):
            if self.list.item(i).data(ID_ROLE) == conversation_id:
                self.list.setCurrentRow(i)
        self._filling = False

    # -- actions -------------------------------------------------------------------------------------------------

    def focus_search(self) -> None:
        """Put the cursor in the search box."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def rename(self, conversation_id: int, title: str) -> None:
        """Give a conversation a new title."""
        title = " ".join(title.split())
        if title:
            self._store.update(conversation_id, title=title)
        self.refresh()

    def delete(self, conversation_id: int, *, ask: bool = True) -> bool:
        """Delete a conversation after confirmation; True when it was deleted."""
        title = self._store.get(conversation_id).title
        if ask and not dialogs.confirm(self, "Delete conversation",
                                       f"Delete “{title}” and all its messages? This cannot be undone.",
                                       action="Delete"):
            return False
        self._store.delete(conversation_id)
        if self._current == conversation_id:
            self._current = None
        self.refresh()
        self.conversationDeleted.emit(conversation_id)
        return True

    def _current_changed(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if self._filling or item is None:
            return
        self._current = item.data(ID_ROLE)
        self.conversationSelected.emit(self._current)

    def _item_edited(self, item: QListWidgetItem) -> None:
        if not self._filling:
            conv_id, title = item.data(ID_ROLE), item.text()
            self._filling = True  # refresh() runs after the editor has closed
            QTimer.singleShot(0, lambda: self.rename(conv_id, title))

    def _delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.delete(item.data(ID_ROLE))

    def context_menu(self, item: QListWidgetItem | None) -> QMenu:
        """The menu of a conversation (rename, export, delete) or, on empty space, of the list (import)."""
        menu = QMenu(self)
        if item is not None:
            conv_id = item.data(ID_ROLE)
            menu.addAction("Rename", lambda: self.list.editItem(item))
            menu.addAction("Export as Markdown…", lambda: self.exportRequested.emit(conv_id, "markdown"))
            menu.addAction("Export as Ember JSON…", lambda: self.exportRequested.emit(conv_id, "json"))
            menu.addSeparator()
        menu.addAction("Import conversation…", self.importRequested.emit)
        if item is not None:
            menu.addSeparator()
            menu.addAction("Delete", lambda: self.delete(item.data(ID_ROLE)))
        return menu

    def _menu(self, pos: QPoint) -> None:
        self.context_menu(self.list.itemAt(pos)).exec(self.list.viewport().mapToGlobal(pos))
