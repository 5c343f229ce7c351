%%% @doc The `procs' frames (docs/protocol.md) the sampler sends: records,
%%% mailbox pairs and removed pids split into chunks under the connection's
%%% 512 KiB frame limit (pack/3, by estimated encoded size), and the chunks
%%% numbered into frames (frames/6).
-module(beamdeck_agent_frames).

-export([pack/3, frames/6]).

-export_type([chunk/0]).

%% Frame limits: frames stay under 512 KiB; sizes are estimated (UTF-8 text
%% is sent unescaped) with a margin.
-define(FRAME_BYTES, 384 * 1024).
-define(FRAME_BASE_BYTES, 256).
-define(MAX_UPSERT, 1000).
-define(MAX_PAIRS, 100000).
-define(RECORD_BYTES, 220).
-define(PAIR_BYTES, 16).
-define(REMOVE_BYTES, 4).

-type chunk() :: {Upserts :: [map()], Pairs :: [[binary() | integer()]], Removes :: [binary()]}.

%% @doc Split records, mailbox pairs and removed pids into frame-sized chunks
%% `{Upserts, Pairs, Removes}': at most 1000 records each and an estimated
%% encoded size under 384 KiB. Always at least one (possibly empty) chunk.
-spec pack(Upserts, Pairs, Removes) -> [{Upserts, Pairs, Removes}]
    when Upserts :: [map()], Pairs :: [[binary() | integer()]], Removes :: [binary()].
pack(Upserts, Pairs, Removes) ->
    pack(Upserts, Pairs, Removes, []).

pack([], [], [], Acc) when Acc =/= [] -> lists:reverse(Acc);
pack(U, M, R, Acc) ->
    Room0 = ?FRAME_BYTES - ?FRAME_BASE_BYTES,
    {U1, URest, Room1} = take(U, ?MAX_UPSERT, Room0, fun record_bytes/1),
    {M1, MRest, Room2} = take(M, ?MAX_PAIRS, Room1, fun pair_bytes/1),
    {R1, RRest, _} = take(R, ?MAX_PAIRS, Room2, fun remove_bytes/1),
    Chunk = {U1, M1, R1},
    case {Chunk, URest, MRest, RRest} of
        {{[], [], []}, [X | Xs], _, _} -> pack(Xs, MRest, RRest, [{[X], [], []} | Acc]);
        _ -> pack(URest, MRest, RRest, [Chunk | Acc])
    end.

%% Take items while both the count and the byte room last.
take(Items, MaxCount, Room, Size) -> take(Items, MaxCount, Room, Size, []).

take([], _, Room, _, Acc) -> {lists:reverse(Acc), [], Room};
take(Rest, 0, Room, _, Acc) -> {lists:reverse(Acc), Rest, Room};
take([X | Xs] = Rest, Count, Room, Size, Acc) ->
    case Size(X) of
        B when B =< Room -> take(Xs, Count - 1, Room - B, Size, [X | Acc]);
        _ -> {lists:reverse(Acc), Rest, Room}
    end.

%% @doc Number `Chunks' into `procs' frames from `Seq0' + 1: the first says
%% `reset' if `Reset'; each carries `Stats' unless empty (a tick's records
%% streamed before its end carry none), and `partial: true' if `Partial'.
%% Returns the frames and the last sequence number.
-spec frames(Chunks, Reset, Partial, Total, Stats, Seq0) -> {[map()], Seq}
    when Chunks :: [chunk()], Reset :: boolean(), Partial :: boolean(),
         Total :: non_neg_integer(), Stats :: map(), Seq0 :: non_neg_integer(),
         Seq :: non_neg_integer().
frames(Chunks, Reset, Partial, Total, Stats, Seq0) ->
    At = beamdeck_agent_terms:now_ms(),
    {Frames, {Seq, _}} =
        lists:mapfoldl(fun({U, M, R}, {Seq1, First}) ->
                               F = #{type => procs, seq => Seq1 + 1, at => At,
                                     reset => Reset andalso First, total => Total,
                                     upsert => U, mailbox => M, remove => R},
                               %% A tick's records streamed before its end carry no
                               %% stats; its last frames do.
                               F1 = case map_size(Stats) of
                                        0 -> F;
                                        _ -> F#{stats => Stats}
                                    end,
                               F2 = case Partial of
                                        true -> F1#{partial => true};
                                        false -> F1
                                    end,
                               {F2, {Seq1 + 1, false}}
                       end, {Seq0, true}, Chunks),
    {Frames, Seq}.

%% Estimated encoded sizes (bytes); UTF-8 is sent unescaped.
record_bytes(#{pid := Pid, name := Name, initialCall := IC, currentFunction := CF,
               status := Status, links := Links, parent := Parent, ancestors := Anc,
               application := App}) ->
    ?RECORD_BYTES + byte_size(Pid) + text_bytes(Name) + text_bytes(IC) + text_bytes(CF)
        + byte_size(Status) + list_bytes(Links, 0) + text_bytes(Parent) + list_bytes(Anc, 0)
        + text_bytes(App);
record_bytes(R) ->
    %% Any other map (tests): every binary, and lists of binaries.
    maps:fold(fun(_, V, Acc) when is_binary(V) -> Acc + byte_size(V);
                 (_, V, Acc) when is_list(V) -> Acc + list_bytes(V, 0);
                 (_, _, Acc) -> Acc
              end, ?RECORD_BYTES, R).

text_bytes(B) when is_binary(B) -> byte_size(B);
text_bytes(_) -> 4.

list_bytes([], Acc) -> Acc;
list_bytes([B | Bs], Acc) -> list_bytes(Bs, Acc + 3 + text_bytes(B)).

pair_bytes([Pid, _]) -> byte_size(Pid) + ?PAIR_BYTES.

remove_bytes(Pid) -> byte_size(Pid) + ?REMOVE_BYTES.
