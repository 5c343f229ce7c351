%%% @doc How the sampler hands frames to the connection (beamdeck_agent_conn)
%%% without outrunning it: send/1 waits while the connection holds more than a
%%% few frames, and backlog/0 and dropped/0 read its queue's counters.
%%%
%%% Pacing keeps a reset's records in one place at a time: without it, a
%%% reset at 100k processes only moved its records from the sampler's heap
%%% to the connection's (24 MB).
-module(beamdeck_agent_pace).

-export([send/1, backlog/0, dropped/0]).

%% Past this many frames waiting at the connection (its queue and its
%% mailbox) the sender waits for it, up to ?PACE_WAIT_MS a frame: one
%% waiting while one is encoded keeps both busy, more is only memory.
-define(PACE_FRAMES, 2).
-define(PACE_WAIT_MS, 1000).
-define(POLL_MS, 5).

%% @doc Send a frame, then wait while the connection holds more than a few;
%% not at all while it is disconnected (beamdeck_agent_conn:send/1 drops then).
-spec send(Frame) -> ok when Frame :: map().
send(Frame) ->
    ok = beamdeck_agent_conn:send(Frame),
    pace(erlang:monotonic_time(millisecond) + ?PACE_WAIT_MS).

%% @doc Frames waiting in the connection's outbound queue (0 if it is not running).
-spec backlog() -> non_neg_integer().
backlog() ->
    try beamdeck_agent_conn:stats() of
        #{queued := Q} when is_integer(Q) -> Q;
        _ -> 0
    catch _:_ -> 0
    end.

%% @doc Frames the connection dropped so far (0 if it is not running).
-spec dropped() -> non_neg_integer().
dropped() ->
    try beamdeck_agent_conn:stats() of
        #{dropped := D} when is_integer(D) -> D;
        _ -> 0
    catch _:_ -> 0
    end.

pace(Deadline) ->
    case pending() > ?PACE_FRAMES andalso erlang:monotonic_time(millisecond) < Deadline of
        true -> receive after ?POLL_MS -> pace(Deadline) end;
        false -> ok
    end.

%% Frames in the connection's queue and casts not yet taken from its mailbox.
pending() ->
    case whereis(beamdeck_agent_conn) of
        undefined -> 0;
        Pid ->
            case erlang:process_info(Pid, message_queue_len) of
                {message_queue_len, N} -> N + backlog();
                undefined -> 0
            end
    end.
