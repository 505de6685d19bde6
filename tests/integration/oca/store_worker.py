"""A process that publishes, replaces, moves and removes keys forever: killed by the crash tests."""

import hashlib
import random
import sys
from pathlib import Path

from oca.config import load_toml, read_store_config
from oca.store import Store, StoreError


def main(config_path: str, seed: int) -> None:
    rng = random.Random(seed)
    config = read_store_config(load_toml(config_path))
    root = Path(config_path).parent
    with Store.open(config, cleanup=True) as store:
        n = 0
        while True:
            n += 1
            key = f"t{rng.randrange(8)}/r{rng.randrange(3)}.mp4"
            op = rng.random()
            try:
                if op < 0.4:
                    data = rng.randbytes(rng.randrange(1, 400_000))
                    src = root / f"src-{seed}"
                    src.write_bytes(data)
                    store.add_file(key, src, tier=rng.choice(["ssd", "hdd"]),
                                   sha256=hashlib.sha256(data).hexdigest())
                elif op < 0.7:
                    data = rng.randbytes(rng.randrange(1, 400_000))
                    with store.stage(key, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                     tier=rng.choice(["ssd", "hdd"])) as st:
                        for i in range(st.offset, len(data), 65536):
                            st.write(data[i:i + 65536])
                        if rng.random() < 0.8:
                            st.commit()
                elif op < 0.85:
                    store.remove(key)
                elif store.get(key) is not None:
                    store.move(key, rng.choice(["ssd", "hdd"]))
            except StoreError:
                pass  # full tier, partial busy: fine, go on
            print(n, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
