%%% @doc Local-recursion lint, read from a module's own object code.
%%%
%%% Over 400 lines because the loop finding and the pin finding read the
%%% same call graph and share its helpers (the graph itself is _lint_graph).
%%%
%%% A process that loops through a LOCAL call (`loop(S)', `start(socket)')
%%% stays in the version of the module it started in: only a fully
%%% qualified call (`?MODULE:loop(S)', `__MODULE__.loop(s)') enters the
%%% newest loaded version. Such a process is killed by a brutal post-purge
%%% at `make_permanent', or pins the old code forever with a soft one (the
%%% forum's `TestListener.start/1' and `loop/1').
%%%
%%% The call graph comes from the module's own Code chunk, decoded by
%%% beamdeck_agent_beam_code: stripped beams (no `debug_info') and releases
%%% without the `compiler' application are analysed like any other. The
%%% abstract code in `debug_info' (beamdeck_agent_lint_forms) is read only
%%% when the decoder cannot read the code (an instruction of a newer OTP):
%%% there it still gives the loops. Every function in a cycle of the local
%%% call graph is a loop; it is reported when the loop blocks or has side
%%% effects (a `receive', or a call into a module that is not a pure data
%%% library), or when a live process sits in it (the caller passes those).
%%% Calls inside anonymous funs are not edges of the enclosing function:
%%% a fun's body runs when the fun is called, often in another process (in
%%% the beam it is a function of its own: a named fun that calls itself is
%%% a loop there, `-f/0-Loop/0-0-').
-module(beamdeck_agent_lint).

-export([object_code/1, analyze/2, analyze_loaded/1, new_cache/0, findings/1, quiet/1, loops/1, pins/1,
         pin_findings/1,
         stuck_info/1, stuck/2,
         finding_json/1, elixir_alias/1, language/1, analyze_with/3, unavailable_findings/2]).

-define(PURE, [erlang, lists, maps, string, binary, proplists, unicode, sets, gb_sets,
               gb_trees, dict, orddict, ordsets, queue, array, math, io_lib, re,
               'Elixir.Enum', 'Elixir.List', 'Elixir.Map', 'Elixir.String',
               'Elixir.String.Chars', 'Elixir.Keyword', 'Elixir.Kernel', 'Elixir.Integer',
               'Elixir.Access', 'Elixir.MapSet', 'Elixir.Tuple', 'Elixir.Atom',
               'Elixir.Float', 'Elixir.Enumerable', 'Elixir.Collectable']).

-define(CACHE, beamdeck_agent_lint_cache).
-define(CACHE_MAX, 2000).

-type fa() :: {atom(), arity()}.
-type finding() :: #{module := module(), function := atom(), arity := arity(),
                     line := pos_integer() | null, cycle := [fa()], calls := [fa()],
                     evidence := binary() | null, exported := boolean(),
                     kind => loop | pin}.
%% `exported': whether every function the fix would call fully qualified
%% is exported (a remote call needs that). `kind' `pin' (absent: a loop):
%% a function that waits in a non-tail call on `calls', which do not return.
-type source() :: beam | debug_info.
-type analysis() :: #{module := module(), source := source(),
                      language := erlang | elixir, loops := [fa()],
                      endless := [fa()], pins := #{fa() => [fa()]},
                      findings := [finding()], quiet := [finding()],
                      pin_findings => [finding()]}.
-type frame() :: {binary(), arity()}.
-type stuck_info() :: #{loops := [frame()], endless := [frame()], waits := #{frame() => [frame()]}}.
-export_type([analysis/0, finding/0, stuck_info/0]).

%%% OBJECT CODE %%%

%% @doc The object code of the loaded (current) version of `Module': the
%% file it was loaded from when that file still holds the same code (same
%% MD5), else the code path's copy if that matches. `{error, Message}' when
%% neither matches (the beam on disk was replaced, or it was loaded from
%% memory).
-spec object_code(Module) -> {ok, binary()} | {error, binary()} when Module :: module().
object_code(Module) ->
    case loaded_md5(Module) of
        undefined ->
            {error, beamdeck_agent_terms:fmt("~ts is not loaded", [Module])};
        Md5 ->
            Candidates = [F || F <- [code:which(Module), object_file(Module)], is_list(F)],
            first_matching(Module, Md5, lists:usort(Candidates))
    end.

loaded_md5(Module) ->
    case erlang:module_loaded(Module) of
        true -> try Module:module_info(md5) catch _:_ -> undefined end;
        false -> undefined
    end.

object_file(Module) ->
    case code:get_object_code(Module) of
        {Module, _Bin, File} -> File;
        error -> none
    end.

first_matching(Module, _Md5, []) ->
    {error, beamdeck_agent_terms:fmt("no beam file of ~ts matches the loaded code", [Module])};
first_matching(Module, Md5, [File | Rest]) ->
    case file:read_file(File) of
        {ok, Bin} ->
            case beam_lib:md5(Bin) of
                {ok, {Module, Md5}} -> {ok, Bin};
                _ -> first_matching(Module, Md5, Rest)
            end;
        {error, _} ->
            first_matching(Module, Md5, Rest)
    end.

%%% ANALYSIS %%%

%% @doc Lint the loaded version of `Module'.
-spec analyze_loaded(Module) -> {ok, analysis()} | {error, binary()} when Module :: module().
analyze_loaded(Module) ->
    case object_code(Module) of
        {ok, Bin} -> analyze(Module, Bin);
        Error -> Error
    end.

%% @doc Lint one module's object code (`Beam', a .beam file's bytes).
-spec analyze(Module, Beam) -> {ok, analysis()} | {error, binary()}
    when Module :: module(), Beam :: binary().
analyze(Module, Beam) ->
    Key = case beam_lib:md5(Beam) of
              {ok, {Module, Md5}} -> {Module, Md5};
              _ -> none
          end,
    case cached(Key) of
        {ok, A} -> {ok, A};
        none ->
            Result = try graph(Module, Beam) of
                         {ok, Source, Funs, Exports} -> {ok, analysis(Module, Source, Funs, Exports)};
                         {error, _} = Error -> Error
                     catch
                         Class:Reason ->
                             {error, beamdeck_agent_terms:fmt("cannot analyse ~ts: ~0tp", [Module, {Class, Reason}])}
                     end,
            cache(Key, Result),
            Result
    end.

%% @doc Create the cache of analyses (by module and MD5), owned by the
%% calling process (the upgrade server): a plan is recomputed each time the
%% operator changes a purge choice, and Elixir's debug_info takes a few
%% milliseconds per module to read.
-spec new_cache() -> ok.
new_cache() ->
    case ets:whereis(?CACHE) of
        undefined ->
            _ = ets:new(?CACHE, [named_table, public, set, {read_concurrency, true}]),
            ok;
        _ -> ok
    end.

cached(none) -> none;
cached(Key) ->
    try ets:lookup(?CACHE, Key) of
        [{_, A}] -> {ok, A};
        [] -> none
    catch error:badarg -> none
    end.

cache(none, _) -> ok;
cache(Key, {ok, A}) ->
    try
        %% Bounded: start over rather than grow without end.
        case ets:info(?CACHE, size) >= ?CACHE_MAX of
            true -> ets:delete_all_objects(?CACHE);
            false -> true
        end,
        ets:insert(?CACHE, {Key, A}),
        ok
    catch error:badarg -> ok
    end;
cache(_, _) -> ok.

%% @doc The findings of an analysis.
-spec findings(Analysis) -> [finding()] when Analysis :: analysis().
findings(#{findings := F}) -> F.

%% @doc Loops with no sign of waiting or effects (a pure recursion): not
%% reported unless a live process sits in one (the caller decides).
-spec quiet(Analysis) -> [finding()] when Analysis :: analysis().
quiet(#{quiet := Q}) -> Q.

%% @doc Every function in a local-recursion cycle (reported or not): a
%% process with one of these on its stack cannot leave the old code.
-spec loops(Analysis) -> [fa()] when Analysis :: analysis().
loops(#{loops := L}) -> L.

%% @doc Functions that are not loops themselves but wait, in a non-tail
%% call, for one that does not come back (a loop with effects, local or
%% fully qualified: `run() -> ?MODULE:serve(), cleanup().'), each with the
%% functions it waits on. While it waits, its frame keeps the old code in
%% use even after the loop moved to the new one. Only the beam decoder
%% tells tail from non-tail calls: empty when the analysis came from
%% debug_info.
-spec pins(Analysis) -> #{fa() => [fa()]} when Analysis :: analysis().
pins(Analysis) -> maps:get(pins, Analysis, #{}).

%% @doc The pins (pins/1) as findings of `kind' `pin', so the lint names
%% the function whose frame keeps a process on the old code, not only the
%% loop it waits on (which may well move to the new code by itself).
-spec pin_findings(Analysis) -> [finding()] when Analysis :: analysis().
pin_findings(Analysis) -> maps:get(pin_findings, Analysis, []).

%% @doc What stuck/2 needs of an analysis, with function names as text
%% (as a backtrace gives them): the loops, the loops with effects through
%% local or fully qualified calls (`endless'), and who waits on whom.
-spec stuck_info(Analysis) -> stuck_info() when Analysis :: analysis().
stuck_info(#{loops := L} = Analysis) ->
    %% An analysis cached by an older agent (hot-upgraded) has no pins.
    E = maps:get(endless, Analysis, []),
    P = maps:get(pins, Analysis, #{}),
    Text = fun({F, A}) -> {atom_to_binary(F, utf8), A} end,
    #{loops => [Text(FA) || FA <- L], endless => [Text(FA) || FA <- E],
      waits => maps:from_list([{Text(FA), [Text(C) || C <- Cs]} || {FA, Cs} <- maps:to_list(P)])}.

%% @doc The frames among `Frames' (one process's functions of the module)
%% that keep it on its code: frames in a local loop, and frames waiting in
%% a non-tail call on a loop (or on such a waiting frame) that is on the
%% same stack. `Info' may also be a plain list of loop frames.
-spec stuck(Frames, Info) -> [frame()]
    when Frames :: [frame()], Info :: stuck_info() | [frame()].
stuck(Frames, Loops) when is_list(Loops) ->
    [F || F <- lists:usort(Frames), lists:member(F, Loops)];
stuck(Frames, #{loops := Loops, endless := Endless, waits := Waits}) ->
    Fs = lists:usort(Frames),
    InLoop = [F || F <- Fs, lists:member(F, Loops)],
    Running = [F || F <- Fs, lists:member(F, Endless)],
    lists:usort(InLoop ++ waiting(Fs, Waits, Running, [])).

waiting(Fs, Waits, Blocking, Acc) ->
    New = [F || F <- Fs, not lists:member(F, Acc),
                lists:any(fun(C) -> lists:member(C, Blocking) end, maps:get(F, Waits, []))],
    case New of
        [] -> Acc;
        _ -> waiting(Fs, Waits, Blocking ++ New, Acc ++ New)
    end.

%% @doc `elixir' for modules named `Elixir.…', else `erlang'.
-spec language(Module) -> erlang | elixir when Module :: module().
language(Module) ->
    case atom_to_binary(Module, utf8) of
        <<"Elixir.", _/binary>> -> elixir;
        _ -> erlang
    end.

%% @doc The Elixir alias of a module (`TestListener' for `Elixir.TestListener'),
%% or the atom's text for Erlang modules.
-spec elixir_alias(Module) -> binary() when Module :: module().
elixir_alias(Module) ->
    case atom_to_binary(Module, utf8) of
        <<"Elixir.", Alias/binary>> -> Alias;
        Text -> Text
    end.

%% @doc Lint `Beam' from one source only, uncached: `beam' (the decoder)
%% or `debug_info' (the abstract code). For comparing the two (tests, bench).
-spec analyze_with(Source, Module, Beam) -> {ok, analysis()} | {error, binary()}
    when Source :: source(), Module :: module(), Beam :: binary().
analyze_with(Source, Module, Beam) ->
    Graph = case Source of
                beam -> beam_graph(Module, Beam);
                debug_info -> beamdeck_agent_lint_forms:graph(Module, Beam)
            end,
    case Graph of
        {ok, S, Funs, Exports} -> {ok, analysis(Module, S, Funs, Exports)};
        {error, _} = E -> E
    end.

%% Funs: #{FA => #{calls => [{FA, Line}], ext => [MFA], recv => boolean(), line => L,
%%               nontail => [FA] (from the beam only)}}
%% The decoder first; debug_info only when the decoder cannot read the code.
graph(Module, Beam) ->
    case beam_graph(Module, Beam) of
        {ok, _, _, _} = Ok -> Ok;
        {error, Why} ->
            case beamdeck_agent_lint_forms:graph(Module, Beam) of
                {ok, _, _, _} = Ok -> Ok;
                {error, _} -> {error, Why}
            end
    end.

beam_graph(Module, Beam) ->
    case beamdeck_agent_beam_code:graph(Beam) of
        {ok, Module, Funs, Exports} -> {ok, beam, Funs, Exports};
        {ok, Other, _, _} -> {error, beamdeck_agent_terms:fmt("cannot analyse ~ts: the beam is module ~ts", [Module, Other])};
        {error, {unknown_opcode, N}} -> {error, beamdeck_agent_terms:fmt("cannot analyse ~ts: unknown opcode ~b", [Module, N])};
        {error, Why} -> {error, beamdeck_agent_terms:fmt("cannot analyse ~ts: ~ts", [Module, Why])}
    end.

analysis(Module, Source, Funs, Exports) ->
    Edges = maps:map(fun(_, #{calls := Cs}) ->
                             lists:usort([FA || {FA, _} <- Cs, maps:is_key(FA, Funs)])
                     end, Funs),
    Cycles = beamdeck_agent_lint_graph:cycles(Edges),
    Loops = lists:usort(lists:append(Cycles)),
    All = lists:append([cycle_findings(Module, Scc, Funs, Exports) || Scc <- Cycles]),
    {Endless, Pins} = beamdeck_agent_lint_graph:pins(Module, Funs, Loops,
                                                     fun(Scc) -> evidence(Scc, Funs) =/= null end),
    #{module => Module, source => Source, language => language(Module), loops => Loops,
      endless => Endless, pins => Pins,
      findings => [F || #{evidence := E} = F <- All, E =/= null],
      quiet => [F || #{evidence := null} = F <- All],
      pin_findings => [pin_finding(Module, FA, Waits, Funs) || {FA, Waits} <- lists:sort(maps:to_list(Pins))]}.

%% The line of its first call to a function it waits on (the Line chunk
%% gives local calls a line), else the function's own.
pin_finding(Module, {F, A} = FA, Waits, Funs) ->
    #{calls := Calls, line := FLine} = maps:get(FA, Funs),
    Line = case [L || {C, L} <- Calls, lists:member(C, Waits), L =/= null] of
               [L1 | _] -> L1;
               [] -> FLine
           end,
    #{module => Module, function => F, arity => A, line => Line, cycle => [], calls => Waits,
      evidence => iolist_to_binary(["waits on ", lists:join(", ", [fa_text(W) || W <- Waits])]),
      exported => true, kind => pin}.

cycle_findings(Module, Scc, Funs, Exports) ->
    Evidence = evidence(Scc, Funs),
    [begin
         #{calls := Calls, line := FLine} = maps:get(FA, Funs),
         InCycle = [{C, L} || {C, L} <- Calls, lists:member(C, Scc)],
         Line = case [L || {_, L} <- InCycle, L =/= null] of
                    [L1 | _] -> L1;
                    [] -> FLine
                end,
         #{module => Module, function => F, arity => A, line => Line, cycle => Scc,
           calls => lists:usort([C || {C, _} <- InCycle]), evidence => Evidence,
           exported => lists:all(fun(C) -> lists:member(C, Exports) end,
                                 [C || {C, _} <- InCycle])}
     end || {F, A} = FA <- Scc].

%% Why the loop matters: it waits or has effects. A pure data recursion
%% (only local calls, BIFs and pure library calls) finishes on its own.
evidence(Scc, Funs) ->
    Infos = [maps:get(FA, Funs) || FA <- Scc],
    case lists:any(fun(#{recv := R}) -> R end, Infos) of
        true -> <<"receive">>;
        false ->
            case [MFA || #{ext := Ext} <- Infos, {M, _, _} = MFA <- Ext,
                         not lists:member(M, ?PURE)] of
                [MFA | _] -> iolist_to_binary(["calls ", beamdeck_agent_terms:mfa(MFA)]);
                [] -> null
            end
    end.

%%% FINDINGS %%%

%% @doc One `lint_unavailable' finding (beamdeck_agent_findings) for each
%% changed module whose loaded code could not be analysed: the plan then
%% assumes that every process with it on its stack loops (the safe side).
%% `LintErrors' are a plan's `lintErrors'; `PidFrames' maps
%% `{Module, FunctionText, Arity}' to the pids with that frame.
-spec unavailable_findings(LintErrors, PidFrames) -> [beamdeck_agent_findings:finding()]
    when LintErrors :: [#{module := binary(), version := loaded | target, error := binary()}],
         PidFrames :: #{{module(), binary(), arity()} => [pid()]}.
unavailable_findings(LintErrors, PidFrames) ->
    [beamdeck_agent_findings:new(
       lint_unavailable, M, lists:append([Ps || {{M2, _, _}, Ps} <- maps:to_list(PidFrames), M2 =:= M]),
       Error,
       beamdeck_agent_terms:fmt("until ~ts can be analysed, every process with it on its stack is counted as stuck in "
           "a loop; a beamdeck_agent built for this OTP release reads its code", [M]))
     || #{version := loaded, module := MB, error := Error} <- LintErrors,
        M <- [binary_to_existing_atom(MB, utf8)], erlang:module_loaded(M)].

%%% JSON %%%

%% @doc A finding as wire JSON: `module', `function', `arity', `line',
%% `language', `message' (what happens and the fix), `fix' (the call to
%% write instead), `calls' (the local calls that close the loop),
%% `evidence' (why the loop matters: `receive' or `calls M:F/A', or null).
%% A pin (pin_findings/1) has the same fields: `calls' are the loops it
%% waits on, `evidence' `waits on F/A', `fix' `a tail call to F/A'.
-spec finding_json(Finding) -> map() when Finding :: finding().
finding_json(#{kind := pin, module := M, function := F, arity := A, line := Line, calls := Waits,
               evidence := Evidence}) ->
    Lang = language(M),
    Name = display(Lang, M, {F, A}),
    On = lists:join(", ", [display(Lang, M, W) || W <- Waits]),
    Fix = iolist_to_binary(["a tail call to ", lists:join(", ", [fa_text(W) || W <- Waits])]),
    #{module => atom_to_binary(M, utf8), function => atom_to_binary(F, utf8), arity => A,
      line => Line, language => Lang, evidence => Evidence, fix => Fix,
      calls => [fa_text(W) || W <- Waits],
      message => unicode:characters_to_binary(
                   io_lib:format("~ts calls ~ts in a non-tail call and waits for it to return, and "
                                 "that function loops: while a process runs in the loop, ~ts's frame "
                                 "below it keeps the old code in use, even after the loop moves on to "
                                 "a newer version of the module, so a brutal post-purge kills the "
                                 "process at make_permanent and a soft one leaves it on the old code. "
                                 "Fix: make that call the last thing ~ts does (a tail call leaves no "
                                 "frame behind).",
                                 [Name, On, Name, Name]))};
finding_json(#{module := M, function := F, arity := A, line := Line, calls := Calls,
               cycle := Cycle, evidence := Evidence, exported := Exported}) ->
    Lang = language(M),
    Fix = iolist_to_binary(lists:join(<<", ">>, [fix_call(Lang, C) || C <- Calls])),
    #{module => atom_to_binary(M, utf8), function => atom_to_binary(F, utf8), arity => A,
      line => Line, language => Lang, evidence => Evidence, fix => Fix,
      calls => [fa_text(C) || C <- Calls],
      message => message(Lang, M, {F, A}, Calls, Cycle, Exported, Fix)}.

message(Lang, M, {F, A} = FA, Calls, Cycle, Exported, Fix) ->
    Name = display(Lang, M, FA),
    Loop = case Cycle of
               [FA] -> io_lib:format("~ts calls itself with a local call", [Name]);
               _ -> io_lib:format("~ts is in a loop of local calls (~ts)", [Name,
                        lists:join(", ", [fa_text(C) || C <- Cycle])])
           end,
    Effect = ", so a process looping in it never reaches a newer version of the module: "
             "a brutal post-purge kills it at make_permanent, a soft one leaves it on the old code "
             "and blocks or kills it at the next upgrade of this module.",
    Fixed = case generated(F) of
                true -> io_lib:format(" Move the loop out of the fun into a named function and "
                                      "call that fully qualified (~ts).", [Fix]);
                false -> io_lib:format(" Fix: call it fully qualified, ~ts~ts.", [Fix,
                                       export_hint(Lang, Calls, Exported, A)])
            end,
    unicode:characters_to_binary([Loop, Effect, Fixed]).

export_hint(_Lang, _Calls, true, _A) -> "";
export_hint(erlang, _Calls, false, _A) -> " (and export the function)";
export_hint(elixir, _Calls, false, _A) -> " (and make it public: def, not defp)".

display(elixir, M, {F, A}) -> io_lib:format("~ts.~ts/~b", [elixir_alias(M), F, A]);
display(erlang, M, {F, A}) -> io_lib:format("~ts:~ts/~b", [M, F, A]).

fix_call(elixir, {F, _A}) -> iolist_to_binary(["__MODULE__.", atom_to_binary(F, utf8), "(...)"]);
fix_call(erlang, {F, _A}) ->
    iolist_to_binary(["?MODULE:", io_lib:write_atom(F), "(...)"]).

fa_text({F, A}) -> iolist_to_binary([atom_to_binary(F, utf8), $/, integer_to_binary(A)]).

%% Compiler-generated names of fun bodies: '-start/1-fun-0-'.
generated(F) ->
    case atom_to_list(F) of
        [$- | _] -> true;
        _ -> false
    end.

