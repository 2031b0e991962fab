"""Progress lines of long work (index builds, embedding)."""


def test_progress_lines_say_the_rate_and_the_time_left():
    import io

    from azchat.progress import ProgressBar

    out = io.StringIO()
    bar = ProgressBar("Embedding", stream=out)
    bar.start -= 10.0                                   # ten seconds in
    bar(50, 200)
    bar(200, 200)
    first, last = out.getvalue().splitlines()
    assert first == "Embedding: 50/200 (25%) 5.0/s, 30 s left"
    assert last == "Embedding: 200/200 (100%) 20.0/s"
