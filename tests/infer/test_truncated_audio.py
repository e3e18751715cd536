"""A truncated MP3 is heard as far as it decodes, as extraction keeps its first rows."""
from __future__ import annotations


def test_a_truncated_mp3_keeps_its_decodable_segments(shared_data, tiny_encoder, tmp_path, capfd):
    from musilingo.features.sources import EncoderSource

    whole = (shared_data / "audio" / "lp-music-caps-samples" / "electronic.mp3").read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole[:400_000])          # the header still promises 60 s
    segments = list(EncoderSource(tiny_encoder, stride=325, segment_seconds=10.0).segments(str(cut)))
    assert len(segments) == 5 and [s.start for s in segments] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert "segment 5 and later cannot be decoded" in capfd.readouterr().err
