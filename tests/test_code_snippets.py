"""Handwritten snippets in the ten supported languages (shared by the code tests), with non-ASCII
identifiers, strings and comments, and a check that each parses cleanly with its installed grammar."""
from __future__ import annotations

import pytest

from structlm.code import parse, supported_languages

SNIPPETS: dict[str, str] = {
    "python": '''\
import math

# Größe berechnen — a comment with non-ASCII text
def größe(länge: float, breite=2) -> float:
    """Fläche eines Rechtecks."""
    name = "café ☕"
    if länge > 0 and breite:
        return länge * breite  # 面积
    elif länge == 0:
        pass
    else:
        raise ValueError(f"bad {länge!r} in {name}")
    return [x ** 2 for x in range(3) if x] or {"k": math.pi}

class Ünit(object):
    def __init__(self, *args, **kw):
        self.π = 3.14
        lambda y: y + 1
''',
    "javascript": '''\
// übersicht: a comment
const grüße = "héllo wörld";
function fläche(a, b = 2) {
  /* block comment ✓ */
  let résultat = a * b;
  for (let i = 0; i < 3; i++) { résultat += i; }
  const t = `template ${résultat} ✓`;
  return [résultat, t, /ab+c/gi].map((x) => x);
}
class Punkt { constructor(x) { this.x = x; } get größe() { return this.x; } }
''',
    "typescript": '''\
// typed größe
interface Größe { breite: number; höhe?: string }
type Ergebnis<T> = T | null;
export function fläche<T extends Größe>(g: T, faktor: number = 2): Ergebnis<number> {
  const name: string = "naïve";
  return g.breite * faktor;
}
enum Farbe { Rot = "rot", Grün = "grün" }
''',
    "java": '''\
// Kommentar: Größe
public class Geometrie {
    /* Fläche ✓ */
    private static final String NAME = "Straße";
    public static double fläche(double länge, int breite) {
        char c = 'ü';
        int[] werte = {1, 2, 3};
        for (int w : werte) { länge += w; }
        return länge * breite > 0 ? länge : -1.0;
    }
}
''',
    "go": '''\
// Paket mit Umlauten: größe
package geometrie

import "fmt"

func Fläche(länge float64, breite int) (float64, error) {
	name := "café"
	r := 'ü'
	raw := `roh ✓`
	for i := 0; i < breite; i++ {
		länge += float64(i)
	}
	fmt.Println(name, r, raw)
	return länge, nil
}
''',
    "c": '''\
#include <stdio.h>
/* Größe: a comment */
static const char *name = "naïve ☕";
int flaeche(int laenge, int breite) {
    char c = 'x';
    // line comment ü
    for (int i = 0; i < breite; i++) { laenge += i; }
    return laenge * breite + (c == 'x' ? 1 : 0);
}
''',
    "cpp": '''\
#include <vector>
// Größe ✓
namespace geo {
template <typename T>
T flaeche(const std::vector<T>& werte) {
    auto s = R"(roh ü)";
    T summe{};
    for (const auto& w : werte) { summe += w; }
    return summe;
}
}  // namespace geo
''',
    "rust": '''\
// Modul für Größen
/// Doc-Kommentar ✓
pub fn fläche(länge: f64, breite: u32) -> Result<f64, String> {
    let name = "café";
    let c = 'ü';
    let roh = r#"roh "zitat""#;
    let mut s = länge;
    for i in 0..breite { s += i as f64; }
    match s { x if x > 0.0 => Ok(x), _ => Err(format!("{} {} {}", name, c, roh)) }
}
''',
    "ruby": '''\
# Größe berechnen
def fläche(länge, breite = 2)
  name = "café #{länge} ☕"
  werte = [1, 2, 3].map { |x| x * 2 }
  if länge > 0
    länge * breite
  else
    raise ArgumentError, name
  end
end
class Punkt; def initialize(x) = @x = x; end
''',
    "php": '''\
<?php
// Größe ✓
function fläche($länge, $breite = 2) {
    # shell comment
    $name = "café $länge";
    $roh = 'naïve';
    /* block */
    foreach ([1, 2, 3] as $w) { $länge += $w; }
    return $länge * $breite;
}
class Punkt { public function __construct(private int $x) {} }
''',
}


def test_every_supported_language_has_a_snippet():
    assert sorted(SNIPPETS) == supported_languages()


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippet_parses_cleanly(language):
    tree = parse(SNIPPETS[language], language, strict=True)
    assert not tree.errors
    assert any(leaf.comment for leaf in tree.root.leaves()), "each snippet carries a comment"
    assert any(ord(ch) > 127 for leaf in tree.root.leaves() for ch in leaf.text), "each snippet is non-ASCII"
