"""The terminal as a channel, for `causette chat`: the real pipeline, replies printed."""
from __future__ import annotations

from typing import Any

from .channels import Capabilities, Channel, Webhook
from .types import Reply, SendResult


class ConsoleChannel(Channel):
    type = "console"
    # Everything comes back "inline": the CLI prints what the pipeline returns.
    capabilities = Capabilities(text_length=4096, buttons=0, inline=1000)
    prefix = ""

    def verify(self, hook: Webhook) -> bool:
        return True

    def render(self, reply: Reply) -> list[Any]:
        lines = [reply.text] if reply.text else []
        for n, c in enumerate(reply.choices, 1):
            lines.append(f"  {n}) {c.title}")
        for card in reply.cards:
            lines.append(f"  [{card.title}] {card.subtitle} {card.url}".rstrip())
        for m in reply.media:
            lines.append(f"  <{m.kind}> {m.url or m.id}" + (f" ({m.caption})" if m.caption else ""))
        if reply.template and not lines:
            lines.append(f"[template {reply.template.name}]")
        return ["\n".join(lines)] if lines else []

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        # Replies not given inline (a flow started by --flow, a timer) are printed here.
        print(self.prefix + str(payload).replace("\n", "\n" + " " * len(self.prefix)), flush=True)
        return SendResult(status="sent")
