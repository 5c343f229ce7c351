%%% @doc Load order (issue 13, rebar3_appup_plugin#51): the relup loads
%%% modules one after the other. New code of A that calls `B:f/1', where
%%% only the new B exports f/1 and B is loaded after A, fails with `undef'
%%% if it runs in between. Read from the target beams' import tables and
%%% the loaded modules' exports (both survive stripping).
%%% `load_order' (warning), id `load_order:A:B'.
-module(beamdeck_agent_check_load_order).

-export([check/1, early_calls/3]).

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{script := Script, beams := Beams}) ->
    Order = [M || {load, {M, _, _}} <- Script],
    Imports = maps:from_list([{M, imports(maps:get(M, Beams, none))} || M <- Order]),
    OldExports = fun(M) ->
                         case erlang:module_loaded(M) of
                             true -> {loaded, M:module_info(exports)};
                             false -> not_loaded
                         end
                 end,
    [finding(A, B, Fs) || {A, B, Fs} <- early_calls(Order, Imports, OldExports)].

%% @doc For modules loaded in `Order', the calls of each module's new code
%% (`Imports') into a module loaded later whose code loaded now does not
%% export the function: `[{Caller, Callee, [{F, A}]}]'.
-spec early_calls(Order, Imports, OldExports) -> [{module(), module(), [{atom(), arity()}]}]
    when Order :: [module()], Imports :: #{module() => [mfa()]},
         OldExports :: fun((module()) -> {loaded, [{atom(), arity()}]} | not_loaded).
early_calls(Order, Imports, OldExports) ->
    Pos = maps:from_list(lists:zip(Order, lists:seq(1, length(Order)))),
    lists:append(
      [[{A, B, Missing}
        || B <- lists:usort([M || {M, _, _} <- maps:get(A, Imports, [])]),
           maps:get(B, Pos, 0) > PA,
           {loaded, Exports} <- [OldExports(B)],
           Missing <- [lists:usort([{F, Ar} || {M, F, Ar} <- maps:get(A, Imports, []), M =:= B,
                                               not lists:member({F, Ar}, Exports)])],
           Missing =/= []]
       || {A, PA} <- lists:keysort(2, maps:to_list(Pos))]).

imports(none) -> [];
imports(Bin) ->
    case beam_lib:chunks(Bin, [imports]) of
        {ok, {_, [{imports, Imports}]}} -> Imports;
        {error, _, _} -> []
    end.

finding(A, B, Fs) ->
    Names = lists:join(", ", [io_lib:format("~ts/~b", [F, Ar]) || {F, Ar} <- Fs]),
    beamdeck_agent_findings:new(
      load_order, A, atom_to_binary(B, utf8), [],
      beamdeck_agent_terms:fmt("the new ~ts calls ~ts:{~ts}, which only the new ~ts exports, but the relup loads ~ts "
          "after ~ts: a call in between fails with undef", [A, B, Names, B, B, A]),
      beamdeck_agent_terms:fmt("list ~ts in the dependencies of ~ts's appup instruction (so ~ts is loaded first)",
          [B, A, B])).


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

early_calls_test() ->
    Imports = #{a => [{b, new_f, 1}, {b, old_f, 0}, {c, g, 0}, {lists, reverse, 1}],
                b => [{a, x, 0}], c => []},
    Old = fun(b) -> {loaded, [{old_f, 0}]};
             (c) -> {loaded, []};
             (_) -> not_loaded
          end,
    %% a before b and c: b's new_f/1 and c's g/0 are missing; b calls a, loaded earlier: fine.
    ?assertEqual([{a, b, [{new_f, 1}]}, {a, c, [{g, 0}]}], early_calls([a, b, c], Imports, Old)),
    %% b and c loaded first: nothing.
    ?assertEqual([], early_calls([b, c, a], Imports, Old)).

imports_of_a_real_beam_test() ->
    {ok, _, Bin} = compile:forms([{attribute, 1, module, bd_lo_probe}, {attribute, 1, export, [{f, 0}]},
                                  {function, 1, f, 0, [{clause, 1, [], [],
                                    [{call, 1, {remote, 1, {atom, 1, other}, {atom, 1, g}}, []}]}]}],
                                 [binary]),
    ?assert(lists:member({other, g, 0}, imports(Bin))).
-endif.
