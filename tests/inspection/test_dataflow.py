"""Tests for keras_interp.inspection.dataflow (glimpse's dataflow core)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from keras_interp.inspection.dataflow import (
    DataFlow,
    DependencyError,
    Node,
    State,
    build_node,
    layer_builder,
    node_builder,
)

# --- glimpse's dataflow_test -----------------------------------------------------

n1 = Node("n1")
n2_1 = Node("n2_1", depends=[n1])
n2_2 = Node("n2_2", depends=[n1])
n3 = Node("n3", depends=[n2_1, n2_2])
n4 = Node("n4")


def compute2_1(o1):  # module level, so that flows pickle
    return ["2_1"] + o1


def compute2_2(o1):
    return ["2_2"] + o1


def compute3(o2_1, o2_2):
    return ["3"] + o2_1 + o2_2


def toofew_callback():
    return "exval"


def toomany_callback(x, y):
    return "exval"


class MyFlow(DataFlow):
    @node_builder(n2_1)
    def build_n2_1(self, d1):
        return compute2_1(d1)

    @node_builder(n2_2)
    def build_n2_2(self, d1):
        return compute2_2(d1)

    @layer_builder(n3)  # the alias
    def build_n3(self, d2_1, d2_2):
        return compute3(d2_1, d2_2)


def manual_flow() -> DataFlow:
    flow = DataFlow()
    flow.register(n2_1, compute2_1)
    flow.register(n2_2, compute2_2)
    flow.register(n3, compute3)
    return flow


def test_decorator_builds_the_diamond_in_order():
    state = build_node(MyFlow(), n3, State({n1: ["1"]}))
    for node in (n1, n2_1, n2_2, n3):
        assert node in state
    assert state[n3] == ["3", "2_1", "1", "2_2", "1"]


def test_build_node_multiple_nodes():
    state = build_node(MyFlow(), (n2_1, n2_2), State({n1: ["1"]}))
    assert state[n2_1] == ["2_1", "1"] and state[n2_2] == ["2_2", "1"]
    assert n3 not in state


def test_build_node_bad_node():
    with pytest.raises(DependencyError, match=r"Node \(Node\(id_='n4'") as info:
        build_node(MyFlow(), n4, State())
    assert info.value.node == n4
    with pytest.raises(DependencyError, match=r"unmet dependencies") as info:
        build_node(MyFlow(), n3, State())  # n1 has neither value nor callback
    assert info.value.node == n1


def test_end_to_end_manual_register():
    state = build_node(manual_flow(), n3, State({n1: ["1"]}))
    assert state[n3] == ["3", "2_1", "1", "2_2", "1"]


def test_bottom_node_generator():
    flow = DataFlow()
    flow.register(n1, lambda: 1)
    assert build_node(flow, n1, State())[n1] == 1


def test_short_circuit_uses_supplied_values():
    calls = []
    flow = manual_flow()
    flow.register(n1, lambda: calls.append("n1") or ["1"])
    state = build_node(flow, n3, State({n2_1: ["a"], n2_2: ["b"]}))
    assert state[n3] == ["3", "a", "b"] and calls == [] and n1 not in state


def test_build_node_does_not_mutate_its_input_state():
    state = State({n1: ["1"]})
    built = build_node(MyFlow(), n3, state)
    assert list(state.keys()) == ["n1"] and n3 in built


def test_cycle_is_reported():
    a = Node("a")
    b = Node("b", [a])
    a.depends = (b,)
    flow = DataFlow()
    flow.register(a, compute2_1)
    flow.register(b, compute2_1)
    with pytest.raises(ValueError, match=r"form a cycle"):
        build_node(flow, a, State())


def test_serializable_without_decorator():
    flow = manual_flow()
    flow2 = pickle.loads(pickle.dumps(flow))
    assert list(flow._callbacks) == list(flow2._callbacks)
    state = build_node(flow2, n3, State({n1: ["1"]}))
    assert state[n3] == ["3", "2_1", "1", "2_2", "1"]


def test_serializable_with_decorator():
    flow = MyFlow()
    flow2 = pickle.loads(pickle.dumps(flow))
    assert set(flow._callbacks) == set(flow2._callbacks)
    for node in flow._callbacks:
        assert flow._callbacks[node].__func__ is flow2._callbacks[node].__func__
        assert flow2._callbacks[node].__self__ is flow2


def test_register_bad_callback():
    flow = DataFlow()
    with pytest.raises(ValueError, match=r"must take 1 positional argument"):
        flow.register(n2_1, toofew_callback)
    with pytest.raises(ValueError, match=r"Received: fn=<function toomany_callback"):
        flow.register(n2_1, toomany_callback)
    with pytest.raises(TypeError, match=r"`fn` must be callable"):
        flow.register(n2_1, "compute")


def test_register_none_removes_the_callback():
    flow = manual_flow()
    flow.register(n3, None)
    with pytest.raises(DependencyError):
        build_node(flow, n3, State({n1: ["1"]}))


def test_node_builder_needs_its_argument():
    with pytest.raises(ValueError, match=r"decorator takes an argument"):

        @node_builder
        def build(self):
            return 1

    with pytest.raises(TypeError, match=r"`node` must be a Node"):
        node_builder("n1")


def test_node_depends_and_identity():
    with pytest.raises(ValueError, match=r"`depends` must be None or a sequence"):
        Node("x", depends=n1)
    with pytest.raises(TypeError, match=r"`depends` must hold nodes"):
        Node("x", depends=["n1"])
    assert Node("n1") == n1 and hash(Node("n1")) == hash(n1) and Node("n2") != n1
    assert n1 != "n1" and repr(n2_1) == "Node(id_='n2_1', depends=['n1'])"


# --- glimpse's state_test ----------------------------------------------------------

s1 = Node("s1")
s2 = Node("s2", depends=[s1])
s3 = Node("s3", depends=[s2])


class State2(State):
    pass


def fill_state() -> State:
    state = State()
    state[s1.id_] = "s1-state"
    state[s2.id_] = "s2-state"
    return state


def test_state_init():
    reference = fill_state()
    assert State(((s1, "s1-state"), (s2, "s2-state"))) == reference
    assert State({s1: "s1-state", s2: "s2-state"}) == reference
    assert State(s1="s1-state", s2="s2-state") == reference
    assert State({s1: "ignored"}, s1="s1-state", s2="s2-state") == reference


def test_state_get_set_del_contains():
    state = fill_state()
    assert state[s1] == "s1-state" and state.get(s1) == "s1-state"
    state[s3] = "s3-state"
    assert state[s3] == state[s3.id_] == "s3-state"
    assert s1 in state and "s1" in state and s3 in state
    del state[s1]
    with pytest.raises(KeyError):
        state[s1]
    with pytest.raises(KeyError):
        state[s1.id_]
    assert s1 not in state and state.get(s1, "default") == "default"
    assert state[s2] == "s2-state"


def test_state_update_and_views():
    state = State()
    state.update({s1: "s1-state", s2: "s2-state"})
    assert state == fill_state()
    state = State()
    state.update(((s1, "s1-state"),), s2="s2-state")
    assert state == fill_state()
    assert list(state.keys()) == ["s1", "s2"] and list(state) == ["s1", "s2"]
    assert list(state.values()) == ["s1-state", "s2-state"]
    assert dict(state.items()) == {"s1": "s1-state", "s2": "s2-state"}
    state.clear()
    assert len(state) == 0


def test_state_repr_str_len():
    state = State2({s1: np.zeros((2, 3)), s2: "s2-state"})
    assert repr(state) == "State2({'s1': <ndarray shape=(2, 3)>, 's2': 's2-state'})"
    assert str(state) == "State2(s1, s2)" and len(state) == 2


def test_state_copy_preserves_subclass_and_is_independent():
    state = State2(((s1, "s1-state"), (s2, "s2-state")))
    for duplicate in (state.copy(), copy.copy(state)):
        assert type(duplicate) is State2 and duplicate == state
        duplicate[s3] = "s3-state"
        assert s3 not in state


def test_state_equality_depends_on_type_and_values():
    assert State(s1=1) != State2(s1=1)
    assert State(s1=np.arange(3)) == State(s1=np.arange(3))
    assert State(s1=np.arange(3)) != State(s1=np.arange(1, 4))
    assert State(s1=1) != State(s2=1)
