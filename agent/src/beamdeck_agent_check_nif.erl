%%% @doc NIF modules (issue 13): a module the relup replaces that loads a
%%% NIF library (its beam imports `erlang:load_nif/2', what an `-on_load'
%%% NIF loader calls; stripping keeps the import table). Replacing it runs
%%% the new on_load: the library must support `upgrade' (the NIF's upgrade
%%% callback), or the load fails and the module is left without its NIFs.
%%% `nif_module' (info).
-module(beamdeck_agent_check_nif).

-export([check/1, loads_nif/1]).

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{script := Script, beams := Beams}) ->
    [beamdeck_agent_findings:new(
       nif_module, M, [],
       beamdeck_agent_terms:fmt("~ts loads a NIF library (its on_load calls erlang:load_nif/2) and the relup "
           "replaces it: the new on_load must succeed while the old library is loaded", [M]),
       <<"make sure the NIF implements the upgrade callback, or restart the node for this "
         "release instead">>)
     || {load, {M, _, _}} <- Script, loads_nif(maps:get(M, Beams, none))].

%% @doc Whether the beam `Bin' calls `erlang:load_nif/2'.
-spec loads_nif(Bin) -> boolean() when Bin :: binary() | none.
loads_nif(none) -> false;
loads_nif(Bin) ->
    case beam_lib:chunks(Bin, [imports]) of
        {ok, {_, [{imports, Imports}]}} -> lists:member({erlang, load_nif, 2}, Imports);
        {error, _, _} -> false
    end.


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

loads_nif_test() ->
    Mod = fun(Name, Body) ->
                  {ok, _, Bin} = compile:forms([{attribute, 1, module, Name}, {attribute, 1, export, [{f, 0}]},
                                                {function, 1, f, 0, [{clause, 1, [], [], [Body]}]}], [binary]),
                  Bin
          end,
    Nif = Mod(bd_nif_probe, {call, 1, {remote, 1, {atom, 1, erlang}, {atom, 1, load_nif}},
                             [{string, 1, "x"}, {integer, 1, 0}]}),
    ?assert(loads_nif(Nif)),
    ?assertNot(loads_nif(Mod(bd_plain_probe, {atom, 1, ok}))),
    ?assertMatch([#{id := <<"nif_module:bd_nif_probe">>, severity := info}],
                 check(#{script => [{load, {bd_nif_probe, brutal_purge, brutal_purge}}],
                         beams => #{bd_nif_probe => Nif}})).
-endif.
