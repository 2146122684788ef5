"""The benchmark's Finnish inputs: short, medium and long texts cut from one fixed pool of sentences."""

from __future__ import annotations

SENTENCES: tuple[str, ...] = (
    "Hyvää huomenta, tämä on lyhyt testi.",
    "Kissa istui ikkunalaudalla ja katseli lintuja pihalla.",
    "Tänään sataa vettä, joten otan sateenvarjon mukaan töihin.",
    "Järvellä oli hiljaista; vain kuikka huusi kaukana rannan takana.",
    "Suomen kieli on uralilainen kieli, jota puhuu noin viisi miljoonaa ihmistä.",
    "Juna lähtee asemalta kello kahdeksan ja saapuu Tampereelle puoli kymmeneltä.",
    "Mummo leipoi pullaa koko aamupäivän, ja keittiö tuoksui kardemummalta.",
    "Metsässä kasvaa mustikoita, puolukoita ja joskus myös kantarelleja.",
    "Kirjaston uusi lukusali avataan yleisölle ensi maanantaina.",
    "Talvella päivät ovat lyhyitä, mutta lumi valaisee pimeän maiseman.",
    "Opettaja kysyi, kuka oli lukenut kirjan loppuun asti.",
    "Saunan jälkeen on mukava istua laiturilla ja kuunnella aaltojen loisketta.",
    "Kaupungin torilla myytiin tuoreita kalakukkoja ja varhaisperunoita.",
    "Hän lupasi soittaa heti, kun kokous on päättynyt.",
    "Revontulet loistivat taivaalla vihreinä ja violetteina juovina.",
    "Lapset rakensivat pihalle suuren lumilinnan ja koristelivat sen kuusenoksilla.",
    "Kesämökille ajetaan kapeaa hiekkatietä pitkin noin kolme kilometriä.",
    "Tutkijat ovat havainneet, että lintujen muuttomatkat ovat alkaneet aiemmin.",
    "Kahvinkeitin pärisi, ja aamun ensimmäinen kuppi oli pian valmis.",
    "Vanha majakka seisoo yksinäisellä luodolla keskellä saaristoa.",
    "Konsertti alkaa seitsemältä, mutta ovet avataan jo tuntia aikaisemmin.",
    "Pyöräilijä pysähtyi mäen päälle ihailemaan auringonlaskua.",
    "Sairaalan uusi siipi valmistuu rakennusyhtiön mukaan ensi syksynä.",
    "Isoisä kertoi tarinoita sodan jälkeisestä jälleenrakennuksesta.",
)


def _cut(text: str, size: int) -> str:
    """`text` cut to at most `size` characters at the last space, ending in a full stop."""
    if len(text) <= size:
        return text
    cut = text[: size - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "."


def text_of(size: int, offset: int) -> str:
    """About `size` characters of whole sentences (the last one cut at a word), starting at sentence
    `offset` of the pool and wrapping around."""
    parts: list[str] = []
    length = 0
    index = offset
    while length < size:
        sentence = SENTENCES[index % len(SENTENCES)]
        parts.append(sentence)
        length += len(sentence) + 1
        index += 1
    return _cut(" ".join(parts), size)


def texts(size: int, count: int, *, offset: int = 0) -> list[str]:
    """`count` different texts of about `size` characters: single whole sentences when that short."""
    if size <= 100:
        near = [s for s in SENTENCES if abs(len(s) - size) <= 15]
        return [near[(offset + n) % len(near)] for n in range(count)]
    return [text_of(size, offset + 3 * n) for n in range(count)]


def one_long_sentence(size: int) -> str:
    """One sentence of about `size` characters, clauses joined by commas: what TTS_MAX_PIECE_CHARS cuts."""
    clauses = [s.rstrip(".").lower() for s in SENTENCES]
    parts: list[str] = []
    length = 0
    for clause in clauses:
        if length >= size:
            break
        parts.append(clause)
        length += len(clause) + 2
    return _cut(", ".join(parts), size).capitalize()
