"""A reload or a closed tab right after an edit loses nothing: the IndexedDB writes of the
outbox and of the draft store that the unload cuts short are kept by the journal
(localStorage, on pagehide) and redone by the next page load."""

from __future__ import annotations

from browser_harness import Instance

OWNER = "unload-test"

WRITE_AND_RELOAD = """async ([owner, n]) => {
    const { Outbox } = await import('/static/js/outbox.js');
    const { DraftStore } = await import('/static/js/draft_store.js');
    const offline = { connected: false, send: () => Promise.reject(new Error('offline')) };
    const box = await Outbox.open(offline, owner);
    const drafts = await DraftStore.open();
    await Outbox.open(offline, owner);  // a second, idle outbox: its empty journal removes nothing
    for (let i = 0; i < n; i++) {
        box.add({ uuid: `${owner}-${i}`, seq: i, type: 'click', payload: { x: i, y: i, label: 1 } });
        const entry = { id: `${owner}-${i}`, type: 'click', payload: { x: i } };
        drafts.save({ key: `${owner}:draft`, entries: [entry] });
    }
    location.reload();  // in the same task: none of the writes above has completed
}"""

READ_BACK = """async (owner) => {
    const { Outbox } = await import('/static/js/outbox.js');
    const { DraftStore } = await import('/static/js/draft_store.js');
    const box = await Outbox.open({ connected: false, send: () => Promise.reject() }, owner);
    const drafts = await DraftStore.open();
    const uuids = [...box.records.keys()].sort();
    const draft = await drafts.get(`${owner}:draft`);
    for (const u of uuids) await box.store.delete(u);  // leave the browser profile clean
    await drafts.save({ key: `${owner}:draft`, entries: [] });
    return { uuids, draft: draft ? draft.entries.map((e) => e.id) : null, left: localStorage.length };
}"""


def test_writes_cut_short_by_a_reload_are_redone(page, server: Instance) -> None:  # noqa: ANN001
    page.goto(f"{server.base_url}/")
    n = 300  # enough queued writes that, without the journal, the reload cuts some short
    with page.expect_navigation():
        page.evaluate(WRITE_AND_RELOAD, [OWNER, n])
    page.wait_for_load_state()
    got = page.evaluate(READ_BACK, OWNER)
    assert got["uuids"] == sorted(f"{OWNER}-{i}" for i in range(n))
    assert got["draft"] == [f"{OWNER}-{n - 1}"], "the latest draft, not an older one"
    assert got["left"] == 0, "the journal is emptied once its writes are redone"
    assert not page.errors, page.errors
