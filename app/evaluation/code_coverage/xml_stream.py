"""Streaming XML reports safely, in memory that does not grow with the file.

Reports are parsed with ``defusedxml.ElementTree.iterparse``: an entity declaration
or external entity reference raises before anything is expanded, so a
"billion laughs" file is rejected at its DOCTYPE. A plain DOCTYPE with a public or
system identifier, as JaCoCo writes, is accepted; expat never loads the external
DTD it names. Each element is removed from its parent after its end event, so the
tree held in memory is the current path from the root plus the events of one
read-ahead chunk. Two limits keep that bound for hostile files: nesting deeper
than ``MAX_DEPTH`` elements, and a tag or text of more than ``MAX_TOKEN_BYTES``
between two ``<``, are rejected while the file is read.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, EntitiesForbidden
from defusedxml.ElementTree import iterparse

from app.errors import InputError, PayloadTooLargeError
from app.evaluation.upload_limits import RunLimitedReader, RunTooLongError

Event = Literal["start", "end"]

# Coverage reports nest 5 to 7 elements deep (Cobertura, JaCoCo).
MAX_DEPTH = 256
# The maximum length of a tag, attribute list or text between two '<'. Paths and
# missing-branches lists in coverage reports are far shorter. expat's time on
# one token grows with the square of its length (a 16 MiB attribute took 29 s
# with expat 2.5.0 in CPython 3.11.7), so the cap is kept small.
MAX_TOKEN_BYTES = 256 * 1024


def iter_elements(
    path: Path, *, field: str, source: str
) -> Generator[tuple[Event, Element], None, None]:
    """Yield ``("start" | "end", element)`` for every element of the file.

    Attributes are complete at the start event. Text and children are available
    at the end event only, and children are removed by then. ``source`` names the
    upload in error messages.

    Raises:
        InputError: the file is not well-formed XML, declares an entity, or refers
            to an external entity.
    """
    stack: list[Element] = []
    with path.open("rb") as raw:
        handle = RunLimitedReader(raw, delimiter=b"<", limit=MAX_TOKEN_BYTES)
        try:
            events = iterparse(
                handle,
                events=("start", "end"),
                forbid_dtd=False,
                forbid_entities=True,
                forbid_external=True,
            )
            for event, element in events:
                if event == "start":
                    stack.append(element)
                    if len(stack) > MAX_DEPTH:
                        raise _too_deep(source, field)
                    yield "start", element
                    continue
                yield "end", element
                stack.pop()
                if stack:
                    stack[-1].remove(element)
        except RunTooLongError as exc:
            raise _token_too_long(source, field, exc) from None
        except ParseError as exc:
            raise _malformed(source, field, exc) from None
        except DefusedXmlException as exc:
            raise _forbidden(source, field, exc) from None
        except (ValueError, LookupError) as exc:
            # An unknown encoding in the XML declaration raises LookupError.
            raise _malformed(source, field, exc) from None


def root_tag(path: Path, *, field: str, source: str) -> str:
    """Return the tag of the document's root element, reading no further.

    Raises:
        InputError: as ``iter_elements``, for the part of the file read.
    """
    elements = iter_elements(path, field=field, source=source)
    try:
        for _, element in elements:
            return str(element.tag)
    finally:
        elements.close()
    raise _malformed(source, field, ValueError("no element found"))


def _malformed(source: str, field: str, exc: Exception) -> InputError:
    return InputError(
        f"{source} is not well-formed XML ({exc}); upload the report file as the "
        "coverage tool wrote it",
        field=field,
        value=str(exc),
    )


def _too_deep(source: str, field: str) -> InputError:
    return InputError(
        f"{source} nests elements more than {MAX_DEPTH} levels deep; coverage "
        "reports nest a few levels, so upload the report as the coverage tool "
        "wrote it",
        field=field,
        value=MAX_DEPTH,
    )


def _token_too_long(
    source: str, field: str, exc: RunTooLongError
) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"{source} has a tag or text longer than {exc.limit:,} bytes (near byte "
        f"{exc.offset:,}); coverage reports hold short paths and numbers, so "
        "upload the report as the coverage tool wrote it",
        field=field,
        value=exc.offset,
    )


def _forbidden(source: str, field: str, exc: DefusedXmlException) -> InputError:
    if isinstance(exc, EntitiesForbidden):
        problem = f"declares the XML entity {exc.name!r}"
    else:
        problem = "refers to an external entity"
    return InputError(
        f"{source} {problem}, which is rejected because entities can expand without "
        "bound or read other files; coverage reports need no entities, so upload the "
        "report as the coverage tool wrote it",
        field=field,
        value=str(exc),
    )
