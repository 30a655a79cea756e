"""nest_asyncio and the embedded server must get along, in either import order.

nest_asyncio is archived upstream; on Python 3.12+ applying it before uvicorn is imported is
known to break uvicorn's pure-asyncio loop. The lab applies it (to run a script written for
asyncio.run inside a kernel), so we check both orders in a fresh interpreter each: apply()
patches asyncio for the whole process and must not leak into other tests.
"""

import subprocess
import sys

import pytest

SCRIPT = """
import nest_asyncio
{first}
{second}
import inferlab
answer = inferlab.Client(inferlab.base_url()).complete("Hi", max_tokens=3, ignore_eos=True)
print("tokens", answer.completion_tokens)
"""


@pytest.mark.parametrize(
    ("first", "second"),
    [("nest_asyncio.apply()", "import uvicorn"), ("import uvicorn", "nest_asyncio.apply()")],
    ids=["apply before uvicorn", "apply after uvicorn"],
)
def test_the_embedded_server_works_after_nest_asyncio_apply(first, second):
    script = SCRIPT.format(first=first, second=second)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tokens 3" in result.stdout
