"""`CoalescingTransport`: the small writes of one turn of the event loop leave in one `writelines`, in order;
a large write or `close` sends what is pending first; nothing is written to a closing transport."""

from __future__ import annotations

import asyncio

from drum.servers.fastapi.protocol import COALESCE_MAX, CoalescingTransport


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, data: list[bytes]) -> None:
        self.calls.append(("writelines", list(data)))

    def close(self) -> None:
        self.calls.append(("close",))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_turn_leave_together_and_in_order():
    async def main() -> list[tuple]:
        raw = Recording()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        transport.write(b"head")
        transport.write(b"")
        transport.write(b"body")
        assert raw.calls == []  # held until the end of the turn
        await asyncio.sleep(0)
        transport.write(b"alone")
        await asyncio.sleep(0)
        big = b"x" * COALESCE_MAX
        transport.write(b"head2")
        transport.write(big)  # sends what is pending with it, at once
        assert raw.calls[-1] == ("writelines", [b"head2", big])
        transport.write(big)
        transport.write(b"last")
        transport.close()  # flushes first
        transport.write(b"late")
        await asyncio.sleep(0)
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1) and transport.is_closing()
        return raw.calls

    calls = asyncio.run(main())
    big = b"x" * COALESCE_MAX
    assert calls == [
        ("writelines", [b"head", b"body"]),
        ("write", b"alone"),
        ("writelines", [b"head2", big]),
        ("write", big),
        ("write", b"last"),
        ("close",),
    ]
