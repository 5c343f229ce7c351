%%% @doc The local call graph of a module from the abstract code in its
%%% `debug_info' chunk (Erlang, or Elixir through its `elixir_erl' backend
%%% when Elixir is loaded), for beamdeck_agent_lint when the beam decoder
%%% cannot read the code (an instruction of a newer OTP), and to compare
%%% the two sources (tests, bench). Calls inside anonymous funs are not
%%% edges of the enclosing function: a fun's body runs when the fun is
%%% called, often in another process.
-module(beamdeck_agent_lint_forms).

-export([graph/2]).

%% @doc `{ok, debug_info, Funs, Exports}' (the shape beamdeck_agent_lint
%% takes from either source) or an error saying there is no debug_info.
-spec graph(Module, Beam) -> {ok, debug_info, #{{atom(), arity()} => map()}, [{atom(), arity()}]}
                             | {error, binary()}
    when Module :: module(), Beam :: binary().
graph(Module, Beam) ->
    case abstract_code(Module, Beam) of
        {ok, Forms} -> {ok, debug_info, forms_graph(Forms), forms_exports(Forms)};
        none -> {error, beamdeck_agent_terms:fmt("~ts has no debug_info", [Module])}
    end.

abstract_code(Module, Beam) ->
    case beam_lib:chunks(Beam, [debug_info]) of
        {ok, {Module, [{debug_info, {debug_info_v1, Backend, Data}}]}} ->
            backend_forms(Backend, Module, Data);
        _ ->
            case beam_lib:chunks(Beam, [abstract_code]) of
                {ok, {Module, [{abstract_code, {raw_abstract_v1, Forms}}]}} -> {ok, Forms};
                _ -> none
            end
    end.

%% elixir_erl exists only where Elixir is installed.
backend_forms(Backend, Module, Data) ->
    case code:ensure_loaded(Backend) of
        {module, Backend} ->
            try Backend:debug_info(erlang_v1, Module, Data, []) of
                {ok, Forms} when is_list(Forms) -> {ok, Forms};
                _ -> none
            catch _:_ -> none
            end;
        _ -> none
    end.

forms_exports(Forms) ->
    lists:append([Es || {attribute, _, export, Es} <- Forms]).

forms_graph(Forms) ->
    maps:from_list([{{Name, Arity}, body_info(Clauses, line(Anno))}
                    || {function, Anno, Name, Arity, Clauses} <- Forms]).

body_info(Clauses, Line) ->
    {Calls, Ext, Recv} = walk(Clauses, {[], [], false}),
    #{calls => lists:reverse(Calls), ext => ordered_unique(Ext), recv => Recv, line => Line}.

%% Unique, in the order the code makes the calls (the accumulator is reversed).
ordered_unique(RevList) ->
    {L, _} = lists:foldl(fun(X, {Acc, Seen}) ->
                                 case maps:is_key(X, Seen) of
                                     true -> {Acc, Seen};
                                     false -> {[X | Acc], Seen#{X => true}}
                                 end
                         end, {[], #{}}, lists:reverse(RevList)),
    lists:reverse(L).

%% A generic walk over abstract code. Literal data is always wrapped
%% ({tuple, _, _}, {atom, _, _}), so these patterns only match code.
walk({call, Anno, {atom, _, F}, Args}, {C, E, R}) ->
    walk(Args, {[{{F, length(Args)}, line(Anno)} | C], E, R});
walk({call, _, {remote, _, {atom, _, M}, {atom, _, F}}, Args}, {C, E, R}) ->
    walk(Args, {C, [{M, F, length(Args)} | E], R});
walk({'fun', _, {clauses, _}}, Acc) -> Acc;
walk({named_fun, _, _, _}, Acc) -> Acc;
walk({'receive', _, Clauses}, {C, E, _}) -> walk(Clauses, {C, E, true});
walk({'receive', _, Clauses, After, Body}, {C, E, _}) ->
    walk([Clauses, After, Body], {C, E, true});
walk(T, Acc) when is_tuple(T) -> walk(tuple_to_list(T), Acc);
walk([H | T], Acc) -> walk(T, walk(H, Acc));
walk(_, Acc) -> Acc.

line(Anno) ->
    try erl_anno:line(Anno) of
        L when is_integer(L), L > 0 -> L;
        _ -> null
    catch _:_ -> null
    end.

