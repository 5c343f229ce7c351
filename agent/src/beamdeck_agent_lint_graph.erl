%%% @doc The cycles of a call graph, for beamdeck_agent_lint: Tarjan's
%%% strongly connected components, keeping those that loop (more than one
%%% function, or one that calls itself); and the functions that wait in a
%%% non-tail call on a loop that does not return.
-module(beamdeck_agent_lint_graph).

-export([cycles/1, pins/4]).

%% @doc The strongly connected components of `Edges' (function → the
%% functions it calls) that are cycles, each sorted.
-spec cycles(Edges) -> [[V]] when Edges :: #{V => [V]}, V :: term().
cycles(Edges) ->
    [Scc || Scc <- sccs(Edges), is_cycle(Scc, Edges)].

%% @doc The loops with effects (`HasEffects') through local or fully
%% qualified calls to `Module' (`Endless'), and, to a fixed point, the
%% functions outside `Loops' that wait on one of them (or on such a
%% function) in a non-tail call, each with what it waits on. `Funs' is
%% the lint's call graph; without `nontail' (debug_info) there are none.
-spec pins(Module, Funs, Loops, HasEffects) -> {Endless :: [FA], #{FA => [FA]}}
    when Module :: module(), Funs :: #{FA => map()}, Loops :: [FA],
         HasEffects :: fun(([FA]) -> boolean()), FA :: {atom(), arity()}.
pins(Module, Funs, Loops, HasEffects) ->
    case lists:all(fun(I) -> maps:is_key(nontail, I) end, maps:values(Funs)) of
        false -> {[], #{}};
        true ->
            Edges = maps:map(fun(_, #{calls := Cs, ext := Ext}) ->
                                     lists:usort([FA || {FA, _} <- Cs, maps:is_key(FA, Funs)]
                                                 ++ [{F, A} || {M, F, A} <- Ext, M =:= Module,
                                                               maps:is_key({F, A}, Funs)])
                             end, Funs),
            Endless = lists:append([Scc || Scc <- cycles(Edges),
                                           HasEffects(Scc)]),
            Start = maps:from_list([{FA, true} || FA <- Endless]),
            Blocking = pinned(Start, Funs),
            Pinned = lists:usort(maps:keys(Blocking) -- Endless) -- Loops,
            {lists:usort(Endless),
             maps:from_list([{FA, [C || C <- maps:get(nontail, maps:get(FA, Funs)),
                                        maps:is_key(C, Blocking)]} || FA <- Pinned])}
    end.

pinned(Blocking, Funs) ->
    New = [FA || {FA, #{nontail := NT}} <- maps:to_list(Funs), not maps:is_key(FA, Blocking),
                 lists:any(fun(T) -> maps:is_key(T, Blocking) end, NT)],
    case New of
        [] -> Blocking;
        _ -> pinned(maps:merge(Blocking, maps:from_list([{FA, true} || FA <- New])), Funs)
    end.

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

