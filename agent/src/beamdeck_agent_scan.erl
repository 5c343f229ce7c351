%%% @doc One pass over every process for a set of modules: who has their
%%% code on the stack, holds their funs or mentions them (parsed from the
%%% full backtrace), and who runs their old code (`check_process_code', only
%%% for modules that have old code). The `old_code' request builds on it
%%% (beamdeck_agent_old_code).
%%%
%%% The pass is split over a few workers linked to the caller, so a request
%%% worker killed on timeout takes them with it.
-module(beamdeck_agent_scan).

-export([scan/2]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([parse_backtrace/2]).
-endif.

-define(SCAN_TIMEOUT, 25000).
-define(FRAME_RE, "\\((?:'((?:[^'\\\\]|\\\\.)+)'|([a-z][A-Za-z0-9_@]*)):('(?:[^'\\\\]|\\\\.)+'|[a-z][A-Za-z0-9_@]*)/([0-9]+) \\+ [0-9]+\\)").

-type ref() :: #{frames := [{binary(), arity()}], holds_fun := boolean(), mention := boolean()}.
-export_type([ref/0]).

%%% SCAN %%%

%% @doc One pass over every process for the modules `Mods'. Options: `old'
%% (modules with old code: check_process_code for each), `group_leaders'
%% (collect the processes led by these), `exclude' (pids to skip),
%% `pids' (walk these instead of every process), `workers'. Returns `hits' (module → [{pid, ref()}]), `old' (module →
%% pids on its old code), `gl_pids' and statistics.
-spec scan(Mods, Opts) -> map() when Mods :: [module()], Opts :: map().
scan(Mods, Opts) ->
    T0 = erlang:monotonic_time(microsecond),
    Procs = case maps:find(pids, Opts) of
                {ok, Ps} -> Ps;
                error -> erlang:processes()
            end,
    Workers = maps:get(workers, Opts, default_workers(length(Procs))),
    Texts = maps:from_list([{atom_to_binary(M, utf8), M} || M <- Mods]),
    Job = #{pattern => case Mods of
                           [] -> none;
                           _ -> binary:compile_pattern(maps:keys(Texts))
                       end,
            texts => Texts, old => maps:get(old, Opts, []),
            gls => maps:get(group_leaders, Opts, []),
            exclude => [self() | maps:get(exclude, Opts, [])]},
    {Results, Partial} = run_workers(chunks(Procs, Workers), Job),
    Hits = lists:foldl(fun({P, Refs}, Acc) ->
                               maps:fold(fun(M, Ref, A2) ->
                                                 maps:update_with(M, fun(L) -> [{P, Ref} | L] end,
                                                                  [{P, Ref}], A2)
                                         end, Acc, Refs)
                       end, #{}, lists:append([H || #{hits := H} <- Results])),
    Old = lists:foldl(fun({M, P}, Acc) ->
                              maps:update_with(M, fun(L) -> [P | L] end, [P], Acc)
                      end, #{}, lists:append([O || #{old := O} <- Results])),
    #{hits => Hits, old => maps:map(fun(_, L) -> lists:sort(L) end, Old),
      gl_pids => lists:append([G || #{gl := G} <- Results]),
      processes => length(Procs),
      matched => lists:sum([N || #{matched := N} <- Results]),
      workers => Workers, partial => Partial,
      elapsedUs => erlang:monotonic_time(microsecond) - T0}.

default_workers(N) when N < 5000 -> 1;
default_workers(_) -> max(1, min(8, erlang:system_info(schedulers_online))).

chunks(L, 1) -> [L];
chunks(L, W) ->
    Size = (length(L) + W - 1) div W,
    chunk(L, Size).

chunk([], _) -> [];
chunk(L, Size) when length(L) =< Size -> [L];
chunk(L, Size) ->
    {A, B} = lists:split(Size, L),
    [A | chunk(B, Size)].

%% Linked workers die with the caller; a worker that fails is reported as
%% a partial scan rather than failing the whole preview.
run_workers(Chunks, Job) ->
    Parent = self(),
    Tag = make_ref(),
    Pids = [spawn_link(fun() ->
                               receive
                                   {Tag, go, Exclude} ->
                                       R = try scan_chunk(C, Job#{exclude => Exclude})
                                           catch _:_ -> failed
                                           end,
                                       Parent ! {Tag, self(), R}
                               end
                       end) || C <- Chunks],
    %% Every worker's own stack holds the module names: skip them all.
    Exclude = Pids ++ maps:get(exclude, Job),
    _ = [P ! {Tag, go, Exclude} || P <- Pids],
    collect(Tag, Pids, [], false, erlang:monotonic_time(millisecond) + ?SCAN_TIMEOUT).

collect(_Tag, [], Acc, Partial, _Deadline) -> {Acc, Partial};
collect(Tag, Pids, Acc, Partial, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Tag, Pid, failed} -> collect(Tag, lists:delete(Pid, Pids), Acc, true, Deadline);
        {Tag, Pid, R} -> collect(Tag, lists:delete(Pid, Pids), [R | Acc], Partial, Deadline)
    after Left ->
        [begin unlink(P), exit(P, kill) end || P <- Pids],
        {Acc, true}
    end.

scan_chunk(Pids, #{pattern := Pattern, texts := Texts, old := OldMods, gls := GLs,
                   exclude := Exclude}) ->
    Re = frame_re(),
    Skip = maps:from_list([{P, true} || P <- [self() | Exclude]]),
    {Hits, Old, Gl, N} =
        lists:foldl(
          fun(P, {H, O, G, Matched} = Acc) ->
                  case maps:is_key(P, Skip) of
                      true -> Acc;
                      false ->
                          {H1, M1} = case backtrace_hit(P, Pattern, Re, Texts) of
                                         none -> {H, Matched};
                                         Refs -> {[{P, Refs} | H], Matched + 1}
                                     end,
                          O1 = [{M, P} || M <- OldMods, old_code(P, M)] ++ O,
                          G1 = case GLs of
                                   [] -> G;
                                   _ -> case process_info(P, group_leader) of
                                            {group_leader, GL} -> [{P, GL} || lists:member(GL, GLs)] ++ G;
                                            _ -> G
                                        end
                               end,
                          {H1, O1, G1, M1}
                  end
          end, {[], [], [], 0}, Pids),
    #{hits => Hits, old => Old, gl => Gl, matched => N}.

old_code(P, M) ->
    try erlang:check_process_code(P, M)
    catch error:_ -> false
    end.

backtrace_hit(_P, none, _Re, _Texts) -> none;
backtrace_hit(P, Pattern, Re, Texts) ->
    case process_info(P, backtrace) of
        {backtrace, Bt} ->
            case binary:match(Bt, Pattern) of
                nomatch -> none;
                _ -> case parse(Bt, Pattern, Re, Texts) of
                         Refs when map_size(Refs) =:= 0 -> none;
                         Refs -> Refs
                     end
            end;
        undefined -> none
    end.

frame_re() ->
    {ok, Re} = re:compile(?FRAME_RE),
    Re.

-ifdef(TEST).
%% @doc Parse a backtrace (the text of `process_info(P, backtrace)') for
%% references to `Mods': per module, the functions on the stack (program
%% counter and return addresses), whether a fun of the module is held, and
%% whether the module is mentioned at all.
-spec parse_backtrace(Backtrace, Mods) -> #{module() => ref()}
    when Backtrace :: binary(), Mods :: [module()].
parse_backtrace(Bt, Mods) ->
    Texts = maps:from_list([{atom_to_binary(M, utf8), M} || M <- Mods]),
    parse(Bt, binary:compile_pattern(maps:keys(Texts)), frame_re(), Texts).
-endif.

parse(Bt, Pattern, Re, Texts) ->
    Found = lists:usort([binary:part(Bt, Pos, Len) || {Pos, Len} <- binary:matches(Bt, Pattern)]),
    Frames = case re:run(Bt, Re, [global, {capture, all_but_first, binary}]) of
                 {match, Ms} ->
                     [{mod_text(Q, U), {unquote(F), binary_to_integer(A)}} || [Q, U, F, A] <- Ms];
                 nomatch -> []
             end,
    lists:foldl(fun(Text, Acc) ->
                        Fs = [FA || {T, FA} <- Frames, T =:= Text],
                        Fun = binary:match(Bt, [<<"#Fun<", Text/binary, ".">>,
                                                <<"#Fun<'", Text/binary, "'.">>]) =/= nomatch,
                        Mention = mentioned(Bt, Text),
                        case Fs =/= [] orelse Fun orelse Mention of
                            true -> Acc#{maps:get(Text, Texts) =>
                                             #{frames => Fs, holds_fun => Fun, mention => Mention}};
                            false -> Acc
                        end
                end, #{}, Found).

mod_text(<<>>, Plain) -> Plain;
mod_text(Quoted, _) -> unescape(Quoted).

unquote(<<$', Rest/binary>>) ->
    unescape(binary:part(Rest, 0, byte_size(Rest) - 1));
unquote(Name) -> Name.

unescape(B) ->
    binary:replace(binary:replace(B, <<"\\'">>, <<"'">>, [global]), <<"\\\\">>, <<"\\">>, [global]).

%% The module's name as a whole atom somewhere (not part of a longer name).
mentioned(Bt, Text) ->
    lists:any(fun({Pos, Len}) ->
                      Before = case Pos of 0 -> $\s; _ -> binary:at(Bt, Pos - 1) end,
                      After = case Pos + Len < byte_size(Bt) of
                                  true -> binary:at(Bt, Pos + Len);
                                  false -> $\s
                              end,
                      (Before =:= $' orelse not atom_char(Before) andalso Before =/= $.)
                          andalso (After =:= $' orelse not atom_char(After) andalso After =/= $.)
              end, binary:matches(Bt, Text)).

atom_char(C) -> (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z)
                    orelse (C >= $0 andalso C =< $9) orelse C =:= $_ orelse C =:= $@.
