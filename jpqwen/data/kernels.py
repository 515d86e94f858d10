"""The filters' per-text measurements as numba kernels over the text's code points.

Module-level ``@njit(cache=True)`` functions, so numba's on-disk cache (``NUMBA_CACHE_DIR``,
which the data stage points at ``<WORK_DIR>/cache/numba``) is found again by the next run:
they compile once per cache directory, not once per run. Imported lazily (numba costs
~0.5 s to import) by ``filters.kernels()``.

Every result equals the plain-Python definition it replaces (``tests/data/test_data_filters.py``
checks them against those definitions):

- :func:`text_profile`: character-class histogram; the paragraphs (``text.split("\\n")``,
  stripped, empty ones dropped) and sentences (``re.findall(r"[^。．！？!?\\n]+[。．！？!?]*")``,
  stripped, empty ones dropped): count, chars, longest, ellipsis endings, and how many
  repeat an earlier one and their chars. Repeats are found by hash and confirmed by
  comparing the code points, so a hash collision cannot make two different lines equal.
- :func:`ngram_hashes`: the rolling polynomial hash of every char n-gram (mod 2**64),
  ``h[i] = cp[i]*M**(n-1) + ... + cp[i+n-1]``.
- :func:`top_count` / :func:`repeat_cover`: one O(n) hash-table pass over those hashes.
"""

from __future__ import annotations

import numba
import numpy as np

_MUL = np.uint64(0x100000001B3)  # FNV prime: rolling polynomial hash of char n-grams (mod 2**64)
_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

# text_profile's output layout
(
    N_OTHER,
    N_SPACE,
    N_HIRA,
    N_KATA,
    N_KANJI,
    N_PUNCT,
    PAR_COUNT,
    PAR_CHARS,
    PAR_DUP,
    PAR_DUP_CHARS,
    SENT_COUNT,
    SENT_CHARS,
    SENT_DUP,
    SENT_DUP_CHARS,
    SENT_MAX,
    SENT_ELLIPSIS,
    TOP_CHAR,
    TOP_CHAR_CODE,
    SECOND_CHAR,
) = range(19)
PROFILE_SIZE = 19

# flags table bits, per code point: low 3 bits = character class, then:
IS_WHITESPACE = 8  # str.isspace(): what str.strip() removes
IS_TERMINATOR = 16  # 。．！？!?  (sentence end)
IS_CONTROL = 32  # what normalize's strip_control removes (C0/C1 except \t \n \r, zero-width, BOM)
IS_BLANK = 64  # \t and U+00A0: what collapse_spaces turns into " " even alone
NFC_CHECK = 128  # may make a text not NFC: combining class > 0, changed by NFC, or composes with a char before it
# every code point with NFC_CHECK is below this (Unicode 14: 0x2FA1D is the last with a decomposition;
# a test scans the whole range)
NFC_CHECK_END = 0x30000


@numba.njit(cache=True, nogil=True)
def _table_size(n):
    size = 16
    while size < 2 * n:
        size <<= 1
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return size, np.uint64(64 - bits)


@numba.njit(cache=True, nogil=True)
def ngram_hashes(cp, n):
    m = cp.size - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    out = np.empty(m, dtype=np.uint64)
    ngram_hashes_into(cp, n, out)
    return out


@numba.njit(cache=True, nogil=True)
def ngram_hashes_into(cp, n, out):
    """:func:`ngram_hashes` written into ``out[:cp.size - n + 1]`` (which must have room); returns
    how many (0 when the text is shorter than one n-gram)."""
    m = cp.size - n + 1
    if m <= 0:
        return 0
    mul = np.uint64(0x100000001B3)
    top = np.uint64(1)  # mul ** (n - 1)
    h = np.uint64(0)
    for k in range(n):
        h = h * mul + np.uint64(cp[k])
        if k > 0:
            top = top * mul
    out[0] = h
    for i in range(1, m):
        h = (h - np.uint64(cp[i - 1]) * top) * mul + np.uint64(cp[i + n - 1])
        out[i] = h
    return m


@numba.njit(cache=True, nogil=True)
def top_count(keys):
    """How often the most frequent key occurs."""
    size, shift = _table_size(keys.size)
    table = np.zeros(size, dtype=np.uint64)
    used = np.zeros(size, dtype=np.bool_)
    count = np.zeros(size, dtype=np.int64)
    best = 0
    for i in range(keys.size):
        k = keys[i]
        j = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift)
        while used[j] and table[j] != k:
            j = (j + 1) & (size - 1)
        used[j] = True
        table[j] = k
        count[j] += 1
        if count[j] > best:
            best = count[j]
    return best


@numba.njit(cache=True, nogil=True)
def _ngram_hash(cp, i, n):
    """The n-gram at ``i`` hashed as :func:`ngram_hashes` does."""
    h = np.uint64(0)
    for t in range(n):
        h = h * np.uint64(0x100000001B3) + np.uint64(cp[i + t])
    return h


@numba.njit(cache=True, nogil=True)
def heavy_top_count(cp, n, high, scratch):
    """``top_count`` of the char n-grams whose first character occurs more than ``high * len / n``
    times (0 when none does). An n-gram occurs at most as often as its first character, so this
    equals the true top count whenever that count exceeds the same bound, and stays within it
    otherwise: the same keep/reject decision for ``count * n / len <= high``, counting only the
    few n-grams that start with a frequent character. ``scratch``: as in :func:`text_profile`."""
    m = cp.size - n + 1
    if m <= 0:
        return 0
    chars = max(cp.size, 1)
    for i in range(cp.size):
        scratch[cp[i]] += 1
    keys = np.empty(m, dtype=np.uint64)
    heavy = 0
    for i in range(m):
        if scratch[cp[i]] * n / chars > high:
            keys[heavy] = _ngram_hash(cp, i, n)
            heavy += 1
    for i in range(cp.size):
        scratch[cp[i]] = 0
    return top_count(keys[:heavy]) if heavy else 0


@numba.njit(cache=True, nogil=True)
def lead_top_count(cp, n, lead):
    """``top_count`` of the char n-grams that start with the character ``lead``."""
    m = cp.size - n + 1
    keys = np.empty(max(m, 0), dtype=np.uint64)
    heavy = 0
    for i in range(max(m, 0)):
        if cp[i] == lead:
            keys[heavy] = _ngram_hash(cp, i, n)
            heavy += 1
    return top_count(keys[:heavy]) if heavy else 0


@numba.njit(cache=True, nogil=True)
def repeat_cover(keys, n):
    """Positions covered by n-grams (given by their hashes) that repeat an earlier one. One table
    of keys, 0 = empty (the key 0 has its own flag), at most 1/8 full: linear probing then ends at
    the first slot almost always (~1.1 probes against ~2.5 at 1/2 full: 30 % less time, measured)."""
    size, shift = _table_size(keys.size * 4)
    table = np.zeros(size, dtype=np.uint64)
    mask = size - 1
    zero_seen = False
    covered = 0
    last = -n
    for i in range(keys.size):
        k = keys[i]
        if k == 0:
            seen = zero_seen
            zero_seen = True
        else:
            j = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift)
            while True:
                t = table[j]
                if t == k:
                    seen = True
                    break
                if t == 0:
                    table[j] = k
                    seen = False
                    break
                j = (j + 1) & mask
        if seen:  # [i, i+n) repeats an earlier n-gram: add the part not covered yet
            covered += min(n, i - last)
            last = i
    return covered


@numba.njit(cache=True, nogil=True)
def _strip(cp, flags, a, b):
    while a < b and flags[cp[a]] & IS_WHITESPACE:
        a += 1
    while b > a and flags[cp[b - 1]] & IS_WHITESPACE:
        b -= 1
    return a, b


@numba.njit(cache=True, nogil=True, inline="always")
def _span_hash(cp, a, b):
    """``(b - a)`` then ``cp[a:b]`` as a polynomial hash (mod 2**64), four code points a step: the
    same value as one at a time (Horner's rule regrouped), with a quarter of the serial chain of
    multiplies (half the time, measured)."""
    mul = np.uint64(0x100000001B3)
    m2 = mul * mul
    m3 = m2 * mul
    m4 = m2 * m2
    h = np.uint64(b - a)
    i = a
    while i + 4 <= b:
        h = h * m4 + (
            np.uint64(cp[i]) * m3 + np.uint64(cp[i + 1]) * m2 + np.uint64(cp[i + 2]) * mul + np.uint64(cp[i + 3])
        )
        i += 4
    while i < b:
        h = h * mul + np.uint64(cp[i])
        i += 1
    return h


@numba.njit(cache=True, nogil=True)
def _repeats(cp, starts, ends, count):
    """(items equal to an earlier item, their chars): exact, via a hash table of the spans."""
    size, shift = _table_size(count)
    slot = np.full(size, -1, dtype=np.int64)
    hashes = np.zeros(max(count, 1), dtype=np.uint64)
    dup = 0
    dup_chars = 0
    for k in range(count):
        a = starts[k]
        b = ends[k]
        h = _span_hash(cp, a, b)
        hashes[k] = h
        j = np.int64((h * np.uint64(0x9E3779B97F4A7C15)) >> shift)
        seen = False
        while slot[j] >= 0:
            m = slot[j]
            if hashes[m] == h and ends[m] - starts[m] == b - a:
                same = True
                for i in range(b - a):
                    if cp[starts[m] + i] != cp[a + i]:
                        same = False
                        break
                if same:
                    seen = True
                    break
            j = (j + 1) & (size - 1)
        if seen:
            dup += 1
            dup_chars += b - a
        else:
            slot[j] = k
    return dup, dup_chars


@numba.njit(cache=True, nogil=True)
def text_profile(cp, flags, scratch):
    """``scratch``: uint32 zeros, one per code point (0..0x10FFFF); left all zero again. One pass
    over the code points (classes, the top two characters, where the line breaks and sentence
    terminators are); paragraphs and sentences are then cut from those positions alone (~15 %
    less time than a scan of the text for each, measured)."""
    out = np.zeros(PROFILE_SIZE, dtype=np.int64)
    n = cp.size
    top = 0  # the most frequent character's count, its code point, and the next count after it
    top_code = 0
    second = 0
    brk = np.empty(n, dtype=np.int64)  # positions of the line breaks and sentence terminators, in order
    nb = 0
    for i in range(n):
        c = cp[i]
        f = flags[c]
        out[f & 7] += 1
        if c == 10 or f & IS_TERMINATOR:
            brk[nb] = i
            nb += 1
        scratch[c] += 1
        k = scratch[c]
        if c == top_code:
            top = k
        elif k > top:
            second = top
            top = k
            top_code = c
        elif k > second:
            second = k
    out[TOP_CHAR] = top
    out[TOP_CHAR_CODE] = top_code
    out[SECOND_CHAR] = second
    for i in range(n):
        scratch[cp[i]] = 0
    starts = np.empty(n + 1, dtype=np.int64)
    ends = np.empty(n + 1, dtype=np.int64)
    # paragraphs: text.split("\n"), stripped, non-empty
    count = 0
    chars = 0
    a = 0
    for k in range(nb + 1):
        i = brk[k] if k < nb else n
        if i < n and cp[i] != 10:
            continue  # (a terminator)
        s, e = _strip(cp, flags, a, i)
        if e > s:
            starts[count] = s
            ends[count] = e
            count += 1
            chars += e - s
        a = i + 1
    out[PAR_COUNT] = count
    out[PAR_CHARS] = chars
    out[PAR_DUP], out[PAR_DUP_CHARS] = _repeats(cp, starts, ends, count)
    # sentences: findall([^。．！？!?\n]+[。．！？!?]*), stripped, non-empty
    count = 0
    chars = 0
    longest = 0
    ellipsis = 0
    i = 0
    k = 0  # brk[k]: the first break at or after i
    while i < n:
        if k < nb and brk[k] == i:  # a break where no sentence is open: skipped
            i += 1
            k += 1
            continue
        a = i
        i = brk[k] if k < nb else n  # the run of other characters ends at the next break
        while k < nb and brk[k] == i and cp[i] != 10:  # then takes the terminators right after it
            i += 1
            k += 1
        s, e = _strip(cp, flags, a, i)
        if e > s:
            starts[count] = s
            ends[count] = e
            count += 1
            chars += e - s
            longest = max(longest, e - s)
            last = cp[e - 1]
            if last == 0x2026 or last == 0x2025:  # … ‥
                ellipsis += 1
            elif e - s >= 3 and cp[e - 2] == last and cp[e - 3] == last and (last == 0x2E or last == 0x30FB):
                ellipsis += 1  # ... ・・・
    out[SENT_COUNT] = count
    out[SENT_CHARS] = chars
    out[SENT_MAX] = longest
    out[SENT_ELLIPSIS] = ellipsis
    out[SENT_DUP], out[SENT_DUP_CHARS] = _repeats(cp, starts, ends, count)
    return out


@numba.njit(cache=True, nogil=True)
def needs_normalizing(cp, flags, nfc, strip_control, collapse_spaces, blank_run):
    """False when none of normalize's steps can change the text of these code points: with ``nfc``,
    no NFC_CHECK character (so the text is NFC); no \\r; no control char, tab/NBSP, two spaces in a
    row or space next to a line break, whitespace at either end, or ``blank_run`` (> 0) line
    breaks in a row. True means: run the steps."""
    n = cp.size
    if n == 0:
        return False
    if collapse_spaces and (flags[cp[0]] & IS_WHITESPACE or flags[cp[n - 1]] & IS_WHITESPACE):
        return True
    run = 0
    prev = 0
    for i in range(n):
        c = cp[i]
        if c == 13:
            return True
        f = flags[c]
        if nfc and f & NFC_CHECK:
            return True
        if strip_control and f & IS_CONTROL:
            return True
        if collapse_spaces:
            if f & IS_BLANK:
                return True
            if c == 32 and (prev == 32 or prev == 10):
                return True
            if c == 10 and prev == 32:
                return True
        if c == 10:
            run += 1
            if blank_run > 0 and run >= blank_run:
                return True
        else:
            run = 0
        prev = c
    return False


def flags_table(ranges: list[tuple[int, int]]) -> np.ndarray:
    """uint8 per code point (0..0x10FFFF): class from sorted ``(first code point, class)`` ranges + bits."""
    table = np.zeros(0x110000, dtype=np.uint8)
    bounds = [r[0] for r in ranges] + [0x110000]
    for (first, cls), end in zip(ranges, bounds[1:], strict=True):
        table[first:end] = cls
    for c in range(0x10000):  # every str.isspace() character is in the BMP
        if chr(c).isspace():
            table[c] |= IS_WHITESPACE
    for c in "。．！？!?":
        table[ord(c)] |= IS_TERMINATOR
    for c in [
        *range(0x0, 0x9),
        0xB,
        0xC,
        *range(0xE, 0x20),
        *range(0x7F, 0xA0),
        0x200B,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,
    ]:
        table[c] |= IS_CONTROL  # == normalize._CONTROL (a test compares them)
    for c in "\t\u00a0":
        table[ord(c)] |= IS_BLANK
    for c in nfc_check_points():
        table[c] |= NFC_CHECK
    return table


def nfc_check_points(end: int = NFC_CHECK_END) -> list[int]:
    """The code points below ``end`` that may make a text not NFC: a superset of those whose NFC quick
    check is not Yes (UAX #15) plus the combining marks (whose order NFC checks). A text without any
    is NFC. Non-zero combining class; changed by NFC on its own (singletons, composition exclusions,
    non-starter decompositions); the second of a two-character canonical decomposition (it may
    compose with the character before it); Hangul medial vowels and final consonants."""
    import unicodedata

    out = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V and T jamo
    for c in range(end):
        ch = chr(c)
        if unicodedata.combining(ch):
            out.add(c)
        d = unicodedata.decomposition(ch)
        if d and not d.startswith("<"):  # canonical
            if unicodedata.normalize("NFC", ch) != ch:
                out.add(c)
            parts = d.split()
            if len(parts) == 2:
                out.add(int(parts[1], 16))
    return sorted(out)


@numba.njit(cache=True, nogil=True)
def count_newlines(data):
    """``bytes.count(b"\\n")`` of a uint8 view (the reader's line numbers): ~5x faster here."""
    n = 0
    for i in range(data.size):
        n += data[i] == 10
    return n


@numba.njit(cache=True, nogil=True)
def url_hints(cp, offsets):
    """Per text (``cp[offsets[k]:offsets[k+1]]``): whether it contains "://" or "www.", without which
    filters.url_ratio is 0 (its plain-Python test, two substring searches, cost ~0.45 ms per MB)."""
    out = np.zeros(offsets.size - 1, dtype=np.bool_)
    for k in range(offsets.size - 1):
        b = offsets[k + 1]
        for i in range(offsets[k], b - 2):
            c = cp[i]
            if c == 58:  # ":"
                if cp[i + 1] == 47 and cp[i + 2] == 47:  # "//"
                    out[k] = True
                    break
            elif c == 119 and i + 3 < b and cp[i + 1] == 119 and cp[i + 2] == 119 and cp[i + 3] == 46:  # www.
                out[k] = True
                break
    return out


def warm_up(flags: np.ndarray) -> None:
    """Compile (or load from the cache) the kernels the local executor calls: the normalizer's check,
    every rule of a chunk at once, the n-gram hashes, the URL hints and the reader's line count. The one-text-at-a-time kernels (NeMo
    Curator's executor, ``TextStats``) compile on first use. The first compile into an empty
    cache takes ~10 CPU-s (batch_rules: numba types and optimizes its callees again within it)."""
    cp = np.frombuffer("ab。\nab。".encode("utf-32-le"), dtype=np.uint32)
    ngram_hashes(cp, 2)
    needs_normalizing(cp, flags, True, True, True, 3)
    url_hints(cp.copy(), np.array([0, cp.size]))
    count_newlines(np.frombuffer(b"a\n", dtype=np.uint8))
    one = np.ones(1, dtype=np.int64)
    nan = np.full(1, np.nan)
    # (writable code points, as first_failures concatenates them: numba compiles per array mutability)
    batch_rules(
        cp.copy(),
        np.array([0, cp.size]),
        flags,
        np.zeros(0x110000, dtype=np.uint32),
        one,
        one,
        nan,
        nan,
        nan,
        5,
        np.empty(cp.size, dtype=np.uint64),
    )


# ---- every rule of a chunk in one call (the local executor's pass 1; filters.first_failures) ----
# rule kinds, in the order of filters.build_rules' classes (filters.JapaneseRule.kind)
(
    R_LENGTH,
    R_JAPANESE,
    R_HIRAGANA,
    R_KATAKANA,
    R_URL,
    R_DUP_LINES,
    R_DUP_LINE_CHARS,
    R_DUP_SENTENCES,
    R_DUP_SENTENCE_CHARS,
    R_TOP_NGRAM,
    R_DUP_NGRAM,
    R_MEAN_SENTENCE,
    R_MAX_SENTENCE,
    R_ELLIPSIS,
) = range(14)


@numba.njit(cache=True, nogil=True)
def _fraction(part, whole):
    return part / max(whole, 1)


@numba.njit(cache=True, nogil=True)
def batch_rules(cp, offsets, flags, scratch, kinds, ns, lows, highs, url_scores, minhash_n, grams):
    """The rules (``kinds``/``ns``/``lows``/``highs``, NaN = no bound) in order on every text
    ``cp[offsets[d]:offsets[d + 1]]``: the first one each text fails and its score (-1: passes
    all), and the MinHash tokens (``minhash_n``-gram hashes; 0 = none) of the texts that pass,
    packed into ``grams`` (room for ``cp.size`` hashes), with their offsets. The same scores,
    bounds and decisions as the filters' ``quick`` / ``score`` / ``keep_document`` one text at a
    time (tests compare them). ``grams`` comes from numpy: a buffer this size allocated here
    (numba's allocator, no transparent huge pages) cost ~1 ms per MB of text in page faults."""
    docs = offsets.size - 1
    fail = np.full(docs, -1, dtype=np.int64)
    score_out = np.zeros(docs, dtype=np.float64)
    gram_off = np.zeros(docs + 1, dtype=np.int64)
    max_n = 1
    for r in range(kinds.size):
        max_n = max(max_n, ns[r])
    covers = np.empty(max_n + 1, dtype=np.float64)
    pos = 0
    for d in range(docs):
        c = cp[offsets[d] : offsets[d + 1]]
        chars = c.size
        prof = text_profile(c, flags, scratch)
        hira = prof[N_HIRA]
        kata = prof[N_KATA]
        kanji = prof[N_KANJI]
        letters = hira + kata + kanji
        covers[:] = np.nan
        have_mh = False
        for r in range(kinds.size):
            kind = kinds[r]
            n = ns[r]
            high = highs[r]
            score = 0.0
            if kind == R_LENGTH:
                score = float(chars)
            elif kind == R_JAPANESE:
                score = _fraction(letters + prof[N_PUNCT], chars - prof[N_SPACE])
            elif kind == R_HIRAGANA:
                score = _fraction(hira, letters)
            elif kind == R_KATAKANA:
                score = _fraction(kata, letters)
            elif kind == R_URL:
                score = url_scores[d]
            elif kind == R_DUP_LINES:
                score = prof[PAR_DUP] / prof[PAR_COUNT] if prof[PAR_COUNT] else 0.0
            elif kind == R_DUP_LINE_CHARS:
                score = _fraction(prof[PAR_DUP_CHARS], prof[PAR_CHARS]) if prof[PAR_COUNT] else 0.0
            elif kind == R_DUP_SENTENCES:
                score = prof[SENT_DUP] / prof[SENT_COUNT] if prof[SENT_COUNT] else 0.0
            elif kind == R_DUP_SENTENCE_CHARS:
                score = _fraction(prof[SENT_DUP_CHARS], prof[SENT_CHARS]) if prof[SENT_COUNT] else 0.0
            elif kind == R_TOP_NGRAM:
                if np.isnan(high):
                    score = top_count(ngram_hashes(c, n)) * n / max(chars, 1)
                elif prof[TOP_CHAR] * n / max(chars, 1) <= high:
                    continue  # bound: passes
                else:
                    # exact whenever the rule fails (filters.TopNgramFilter.quick)
                    if prof[SECOND_CHAR] * n / max(chars, 1) <= high:
                        heavy = lead_top_count(c, n, prof[TOP_CHAR_CODE])
                    else:
                        heavy = heavy_top_count(c, n, high, scratch)
                    score = heavy * n / max(chars, 1)
            elif kind == R_DUP_NGRAM:
                bounded = False
                if not np.isnan(high):
                    for m in range(n):
                        if covers[m] <= high:  # (NaN compares False)
                            bounded = True
                            break
                if bounded:
                    continue
                if n == minhash_n:  # written where the packed MinHash tokens go (kept if the text passes)
                    h = grams[pos : pos + ngram_hashes_into(c, n, grams[pos:])]
                    have_mh = True
                else:
                    h = ngram_hashes(c, n)
                score = repeat_cover(h, n) / max(chars, 1)
                covers[n] = score
            elif kind == R_MEAN_SENTENCE:
                score = prof[SENT_CHARS] / prof[SENT_COUNT] if prof[SENT_COUNT] else 0.0
            elif kind == R_MAX_SENTENCE:
                score = float(prof[SENT_MAX]) if prof[SENT_COUNT] else 0.0
            elif kind == R_ELLIPSIS:
                score = prof[SENT_ELLIPSIS] / prof[SENT_COUNT] if prof[SENT_COUNT] else 0.0
            if (not np.isnan(lows[r]) and score < lows[r]) or (not np.isnan(high) and score > high):
                fail[d] = r
                score_out[d] = score
                break
        if fail[d] < 0 and minhash_n > 0:
            if have_mh:
                pos += max(chars - minhash_n + 1, 0)
            else:
                pos += ngram_hashes_into(c, minhash_n, grams[pos:])
        gram_off[d + 1] = pos
    return fail, score_out, grams[:pos], gram_off
