"""The README's losses example is executed, so it cannot rot."""

import re

from conftest import REPO_ROOT


def test_readme_losses_example_runs():
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("## Use our losses in your own code")
    nxt = text.find("\n## ", start + 1)
    section = text[start: nxt if nxt != -1 else len(text)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "no python block in the README losses section"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md:losses", "exec"), namespace)
    assert namespace["logits"].grad is not None and namespace["embeddings"].grad is not None
    assert 0.0 < namespace["loss_fn"].last_stats["p_mean"] < 1.0
