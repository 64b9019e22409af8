"""A bare nats-py echo in a process of its own, for side-by-side latency figures:
``python -m bench._echo SUBJECT`` with NATS_URL, NATS_USER, NATS_PASSWORD set."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import nats
from nats.aio.msg import Msg


async def serve(subject: str) -> None:
    nc = await nats.connect(
        os.environ["NATS_URL"], user=os.environ["NATS_USER"], password=os.environ["NATS_PASSWORD"]
    )

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=echo)
    await nc.flush()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
