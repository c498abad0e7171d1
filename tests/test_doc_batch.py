"""explorer.doc_batch: a refresh that changes only values does not walk the document's models; one that adds a
model walks them once, and the new model is part of the document afterwards."""

import pytest
from bokeh.document import Document
from bokeh.models import Column, Div

from explorer.doc_batch import batched_changes


@pytest.fixture
def doc_with_counter(monkeypatch):
    doc = Document()
    first = Div(text="a")
    root = Column(children=[first])
    doc.add_root(root)
    walks = []
    recompute = type(doc.models).recompute
    monkeypatch.setattr(type(doc.models), "recompute", lambda self: (walks.append(1), recompute(self))[1])
    return doc, root, first, walks


def test_value_changes_are_sent_without_walking_the_models(doc_with_counter):
    doc, root, first, walks = doc_with_counter
    with batched_changes(doc):
        first.text = "b"
        first.styles = {"color": "red"}
        assert doc.callbacks.hold_value is not None, "the changes go out together, when the block ends"
    assert walks == []
    assert first.text == "b" and doc.callbacks.hold_value is None
    assert doc.models._freeze_count == 0 and "invalidate" not in vars(doc.models)


def test_a_new_model_walks_the_models_once_and_joins_the_document(doc_with_counter):
    doc, root, first, walks = doc_with_counter
    new, other = Div(text="new"), Div(text="other")
    with batched_changes(doc):
        root.children = [first, new]
        root.children = [first, new, other]
        assert doc.get_model_by_id(new.id) is None, "not walked inside the block"
    assert walks == [1]
    assert doc.get_model_by_id(new.id) is new and doc.get_model_by_id(other.id) is other
    # the unbatched path still works afterwards: Bokeh's own invalidate walks at once
    third = Div(text="third")
    root.children = [third]
    assert walks == [1, 1] and doc.get_model_by_id(third.id) is third and doc.get_model_by_id(new.id) is None


def test_an_error_in_the_block_leaves_the_document_as_bokeh_expects(doc_with_counter):
    doc, root, first, walks = doc_with_counter
    new = Div(text="new")
    with pytest.raises(RuntimeError):
        with batched_changes(doc):
            root.children = [first, new]
            raise RuntimeError("a refresh failed")
    assert doc.models._freeze_count == 0 and not {"invalidate", "_push_freeze"} & set(vars(doc.models))
    assert walks == [1] and doc.get_model_by_id(new.id) is new


def test_a_batch_inside_a_batch_leaves_the_walk_to_the_outer_one(doc_with_counter):
    doc, root, first, walks = doc_with_counter
    new = Div(text="new")
    with batched_changes(doc):
        with batched_changes(doc):
            root.children = [first, new]
        assert walks == [] and doc.get_model_by_id(new.id) is None
    assert walks == [1] and doc.get_model_by_id(new.id) is new
    assert doc.models._freeze_count == 0 and not {"invalidate", "_push_freeze"} & set(vars(doc.models))


def test_without_a_document_it_is_a_plain_block():
    with batched_changes(None):
        x = 1
    assert x == 1
