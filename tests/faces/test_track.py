from unmask.faces import Detection, assign_tracks


def det(x, y, side=50):
    return Detection((x, y, x + side, y + side), 0.99)


def test_two_people_keep_their_track_ids_while_moving():
    frames = [[det(10 + 8 * t, 50), det(300 - 8 * t, 60)] for t in range(6)]
    frames[3] = frames[3][::-1]  # detector order must not matter
    ids = assign_tracks(frames)
    left = [ids[t][[d.box[0] for d in frames[t]].index(min(d.box[0] for d in frames[t]))] for t in range(6)]
    assert len(set(left)) == 1
    assert all(sorted(row) == [0, 1] for row in ids)


def test_a_face_missing_for_a_frame_keeps_its_track_and_a_new_face_gets_a_new_id():
    frames = [[det(100, 100)], [], [det(110, 100)], [det(110, 100), det(400, 300)]]
    assert assign_tracks(frames) == [[0], [], [0], [0, 1]]


def test_a_face_far_away_is_not_linked():
    assert assign_tracks([[det(0, 0)], [det(500, 400)]]) == [[0], [1]]


def test_a_track_survives_exactly_max_gap_missing_frames():
    assert assign_tracks([[det(0, 0)], [], [], [det(5, 0)]], max_gap=2) == [[0], [], [], [0]]
    assert assign_tracks([[det(0, 0)], [], [], [], [det(5, 0)]], max_gap=2) == [[0], [], [], [], [1]]
