"""The student network: masking, permutation invariance, shapes, determinism, and that it learns."""
import pytest
import torch

from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig

SMALL = StudentConfig(window=8, dim=32, depth=1, heads=2, nb_features=16, point_layers=2, dropout=0.0)


def clouds(batch=2, window=8, points=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, window, points, 5, generator=generator)
    mask = torch.rand(batch, window, points, generator=generator) > 0.3
    return x, mask


def model(config=SMALL, seed=0):
    torch.manual_seed(seed)
    return RadarPoseStudent(config).eval()


def test_shapes_and_twist_on_the_unit_circle():
    x, mask = clouds()
    out = model()(x, mask)
    assert out.root.shape == (2, 8, 3) and out.joints.shape == (2, 8, 24, 3)
    assert out.joints29.shape == (2, 8, 29, 3) and out.betas.shape == (2, 8, 4)
    torch.testing.assert_close(out.twist.norm(dim=-1), torch.ones(2, 8, 23))
    torch.testing.assert_close(out.joints, out.joints29[:, :, :24])
    mars = model(StudentConfig(**{**SMALL.__dict__, "joint_set": "mars_19", "rotations": False}))(x, mask)
    assert mars.joints.shape == (2, 8, 19, 3) and mars.twist is None


def test_padded_points_take_no_part():
    x, mask = clouds()
    student = model()
    with torch.no_grad():
        before = student(x, mask).joints
        x2 = x.clone()
        x2[~mask] = 1e3 * torch.randn(int((~mask).sum()), 5)
        after = student(x2, mask).joints
    torch.testing.assert_close(before, after)


def test_points_are_a_set_and_empty_frames_are_fine():
    x, mask = clouds()
    student = model()
    order = torch.randperm(x.shape[2])
    with torch.no_grad():
        torch.testing.assert_close(student(x, mask).joints, student(x[:, :, order], mask[:, :, order]).joints)
        mask[0, 3] = False                                    # a frame the radar saw nothing in
        out = student(x, mask)
    assert torch.isfinite(out.joints).all()


def test_a_centred_student_moves_with_the_person():
    # Where a person stands moves the skeleton, not its shape: shifting every point shifts every
    # joint by the same and leaves twists and shape alone (an empty frame keeps its anchor).
    x, mask = clouds()
    mask[0, 2] = False
    shift = torch.tensor([1.5, -0.7, 0.3])
    moved = x.clone()
    moved[..., :3] += shift
    student = model()
    with torch.no_grad():
        here, there = student(x, mask), student(moved, mask)
    torch.testing.assert_close(there.joints, here.joints + shift, atol=1e-4, rtol=0)
    torch.testing.assert_close(there.twist, here.twist, atol=1e-4, rtol=0)
    torch.testing.assert_close(there.betas, here.betas, atol=1e-4, rtol=0)
    absolute = model(StudentConfig(**{**SMALL.__dict__, "centred": False}))
    with torch.no_grad():
        assert not torch.allclose(absolute(moved, mask).joints, absolute(x, mask).joints + shift, atol=1e-2)


def test_an_empty_frame_keeps_the_anchor_before_it_in_the_window():
    nan = [float("nan")] * 3
    centroids = torch.tensor([[nan, [1.0, 0.0, 0.0], nan, [2.0, 0.0, 0.0]], [nan] * 4])
    student = model()
    student.root_mean.fill_(5.0)
    torch.testing.assert_close(student.anchors(centroids),
                               torch.tensor([[[1.0, 0.0, 0.0]] * 3 + [[2.0, 0.0, 0.0]], [[5.0] * 3] * 4]))


def test_the_newest_frame_sees_only_the_window():
    # streaming: frames before the window cannot matter; a change in the window does
    x, mask = clouds(window=8)
    student = model()
    with torch.no_grad():
        short = student(x[:, 4:], mask[:, 4:]).joints[:, -1]
        changed = x.clone()
        changed[:, 5] += 1.0
        assert not torch.allclose(student(changed[:, 4:], mask[:, 4:]).joints[:, -1], short)


def test_a_seed_gives_the_same_model():
    x, mask = clouds()
    with torch.no_grad():
        torch.testing.assert_close(model(seed=3)(x, mask).joints, model(seed=3)(x, mask).joints)
        assert not torch.allclose(model(seed=3)(x, mask).joints, model(seed=4)(x, mask).joints)


def test_a_stretch_longer_than_the_window_gives_every_window():
    x, mask = clouds(window=11)
    student = model()
    with torch.no_grad():
        stretch = student(x, mask).joints                               # (2 * 4, 8, 24, 3)
        assert stretch.shape == (8, 8, 24, 3)
        torch.testing.assert_close(stretch[5], student(x[1:2, 1:9], mask[1:2, 1:9]).joints[0])
        with pytest.raises(ValueError, match="at most 8 frames"):
            student.decode(torch.zeros(1, 9, SMALL.dim), torch.zeros(1, 9, 3))


def test_bad_input_and_config_are_named():
    x, mask = clouds(window=8)
    with pytest.raises(ValueError, match=r"\(B, W, N, 5\)"):
        model()(x[..., :4][:, :8], mask[:, :8])
    with pytest.raises(ValueError, match="SMPL-based"):
        StudentConfig(joint_set="mars_19", rotations=True)
    with pytest.raises(ValueError, match="unknown joint set"):
        StudentConfig(joint_set="coco_17")


@pytest.mark.parametrize("centred", [False, True])
def test_it_learns_where_the_points_are(centred):
    # the root is the centroid of the real points: a few dozen steps must cut the error well down
    # (a centred student starts there, less its head's offset)
    torch.manual_seed(0)
    student = RadarPoseStudent(StudentConfig(**{**SMALL.__dict__, "centred": centred})).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)

    def batch():
        x, mask = clouds(batch=16, seed=int(torch.randint(0, 10**6, ())))
        x[..., :3] += 2 * torch.randn(16, 1, 1, 3)
        weight = mask.unsqueeze(-1).float()
        centre = (x[..., :3] * weight).sum(2) / weight.sum(2).clamp(min=1)
        return x, mask, centre

    x, mask, centre = batch()
    with torch.no_grad():
        start = (student(x, mask).root - centre).abs().mean()
    for _ in range(60):
        xb, mb, cb = batch()
        loss = (student(xb, mb).root - cb).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        end = (student(x, mask).root - centre).abs().mean()
    assert end < 0.5 * start, (float(start), float(end))
