%%% @doc The cycles of a call graph, for beamdeck_agent_lint: Tarjan's
%%% strongly connected components, keeping those that loop (more than one
%%% function, or one that calls itself).
-module(beamdeck_agent_lint_graph).

-export([cycles/1]).

%% @doc The strongly connected components of `Edges' (function → the
%% functions it calls) that are cycles, each sorted.
-spec cycles(Edges) -> [[V]] when Edges :: #{V => [V]}, V :: term().
cycles(Edges) ->
    [Scc || Scc <- sccs(Edges), is_cycle(Scc, Edges)].

is_cycle([FA], Edges) -> lists:member(FA, maps:get(FA, Edges));
is_cycle(_, _) -> true.

%% Tarjan's strongly connected components, iterative enough for modules of
%% a few thousand functions (recursion depth is bounded by the SCC depth).
sccs(Edges) ->
    {_, _, _, _, Out} =
        lists:foldl(fun(V, S) -> tarjan_root(V, Edges, S) end,
                    {0, #{}, #{}, [], []}, lists:sort(maps:keys(Edges))),
    Out.

tarjan_root(V, Edges, {_, Index, _, _, _} = S) ->
    case maps:is_key(V, Index) of
        true -> S;
        false -> strongconnect(V, Edges, S)
    end.

strongconnect(V, Edges, {N, Index, Low, Stack, Out}) ->
    S0 = {N + 1, Index#{V => N}, Low#{V => N}, [V | Stack], Out},
    S1 = lists:foldl(
           fun(W, {_, Ix, _, St, _} = S) ->
                   case maps:find(W, Ix) of
                       error ->
                           {N2, Ix2, Lo2, St2, O2} = strongconnect(W, Edges, S),
                           {N2, Ix2, Lo2#{V := min(maps:get(V, Lo2), maps:get(W, Lo2))}, St2, O2};
                       {ok, WIx} ->
                           case lists:member(W, St) of
                               true ->
                                   {N2, Ix2, Lo2, St2, O2} = S,
                                   {N2, Ix2, Lo2#{V := min(maps:get(V, Lo2), WIx)}, St2, O2};
                               false -> S
                           end
                   end
           end, S0, maps:get(V, Edges, [])),
    {N3, Ix3, Lo3, St3, O3} = S1,
    case maps:get(V, Lo3) =:= maps:get(V, Ix3) of
        true ->
            {Scc, Rest} = pop_until(V, St3, []),
            {N3, Ix3, Lo3, Rest, [lists:sort(Scc) | O3]};
        false -> S1
    end.

pop_until(V, [V | Rest], Acc) -> {[V | Acc], Rest};
pop_until(V, [W | Rest], Acc) -> pop_until(V, Rest, [W | Acc]).

