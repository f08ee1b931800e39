"""Ingest/validate on real files: penguins, Parquet, gs:// through the GCS emulator, and bad input."""
import hashlib
import json

import pandas as pd
import pytest
from conftest import ingest_into

from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import Schema


def test_penguins_schema_statistics_and_split(penguin_splits, penguins_csv):
    result, paths = penguin_splits
    schema = Schema.load(paths["schema.json"])
    assert schema.label == "species" and schema.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert schema.categorical == ["island", "sex"]
    assert schema.numeric == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
    assert schema.feature("sex").nullable and not schema.feature("island").nullable
    assert schema.feature("sex").domain == ["female", "male"]
    assert schema.feature("flipper_length_mm").min == 172.0 and schema.feature("flipper_length_mm").max == 231.0

    assert result.digest == hashlib.sha256(penguins_csv.read_bytes()).hexdigest()
    assert (result.rows, result.train_rows, result.validation_rows, result.test_rows) == (344, 206, 69, 69)
    stats = json.loads(open(paths["statistics.json"]).read())
    assert stats["features"]["sex"]["missing"] == 11
    assert stats["features"]["bill_length_mm"]["missing"] == 2
    assert stats["label"]["counts"] == {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}
    report = open(paths["report.md"]).read()
    assert "| sex | 333 | 11 | 2 |" in report and result.digest in report

    splits = {name: pd.read_parquet(paths[f"{name}.parquet"]) for name in ("train", "validation", "test")}
    assert all(list(split.columns) == schema.feature_names + ["species"] for split in splits.values())
    # Stratified: each class keeps its share in the validation and test splits.
    for name in ("validation", "test"):
        assert splits[name]["species"].value_counts().to_dict() == {"Adelie": 30, "Gentoo": 25, "Chinstrap": 14}
    assert sum(split["sex"].isna().sum() for split in splits.values()) == 11
    assert "(train 206, validation 69, test 69;" in report


def test_splits_are_disjoint_and_cover_every_row(tmp_path, penguins_csv):
    """Every row lands in exactly one split (rows tagged with their position, so equal rows stay apart)."""
    frame = pd.read_csv(penguins_csv).assign(row=lambda f: f.index.astype(float))
    tagged = tmp_path / "tagged.csv"
    frame.to_csv(tagged, index=False)
    _, paths = ingest_into(tmp_path / "out", tagged, validation_fraction=0.25, test_fraction=0.15)
    rows = {name: set(pd.read_parquet(paths[f"{name}.parquet"])["row"]) for name in ("train", "validation", "test")}
    assert not rows["train"] & rows["validation"] and not rows["train"] & rows["test"]
    assert not rows["validation"] & rows["test"]
    assert set().union(*rows.values()) == set(frame["row"])
    assert (len(rows["validation"]), len(rows["test"])) == (86, 52)  # 0.25 and 0.15 of each class, rounded


def test_tiny_classes_get_a_row_in_every_split_or_are_refused(tmp_path):
    rows = [f"{x},{'a' if x % 2 else 'b'}" for x in range(40)] + ["100,rare", "101,rare", "102,rare"]
    data = write_csv(tmp_path, "x,y\n" + "\n".join(rows) + "\n")
    _, paths = ingest_into(tmp_path / "three", data, label="y")
    for name in ("train", "validation", "test"):
        assert (pd.read_parquet(paths[f"{name}.parquet"])["y"] == "rare").sum() == 1
    two = write_csv(tmp_path, "x,y\n" + "\n".join(rows[:-1]) + "\n", "two.csv")
    with pytest.raises(InvalidInputError, match="class 'rare' has 2 row\\(s\\), and each class needs 3"):
        ingest_into(tmp_path / "two", two, label="y")
    assert not (tmp_path / "two" / "train.parquet").exists()


def test_split_is_deterministic_per_seed(tmp_path, penguins_csv):
    _, first = ingest_into(tmp_path / "a", penguins_csv, seed=7)
    _, second = ingest_into(tmp_path / "b", penguins_csv, seed=7)
    _, other = ingest_into(tmp_path / "c", penguins_csv, seed=8)
    read = lambda p: pd.read_parquet(p["test.parquet"])  # noqa: E731
    pd.testing.assert_frame_equal(read(first), read(second))
    assert not read(first).equals(read(other))


def test_parquet_and_given_schema(tmp_path, penguins_csv, penguin_splits):
    parquet = tmp_path / "penguins.parquet"
    pd.read_csv(penguins_csv).to_parquet(parquet)
    given = Schema.load(penguin_splits[1]["schema.json"])
    result, paths = ingest_into(tmp_path / "out", parquet, given_schema=given)
    assert result.rows == 344
    assert Schema.load(paths["schema.json"]) == given


def test_reads_gs_uri_through_emulator(tmp_path, bucket, penguins_csv):
    bucket.blob("raw/penguins.csv").upload_from_filename(str(penguins_csv))
    result, _ = ingest_into(tmp_path, f"gs://{bucket.name}/raw/penguins.csv")
    assert result.digest == hashlib.sha256(penguins_csv.read_bytes()).hexdigest()
    assert result.rows == 344


def test_tolerated_unknown_values_are_reported(tmp_path, penguins_csv, penguin_splits):
    frame = pd.read_csv(penguins_csv)
    frame.loc[0, "island"] = "Anvers"
    path = tmp_path / "one_unknown.csv"
    frame.to_csv(path, index=False)
    given = Schema.load(penguin_splits[1]["schema.json"])
    result, paths = ingest_into(tmp_path / "out", path, given_schema=given, max_unknown_fraction=0.01)
    assert result.anomalies == ["island: 1 values outside the schema domain, e.g. ['Anvers']"]
    assert "Anvers" in open(paths["report.md"]).read()


def test_rows_without_label_are_dropped_and_counted(tmp_path, penguins_csv):
    frame = pd.read_csv(penguins_csv)
    frame.loc[:4, "species"] = None
    path = tmp_path / "unlabelled.csv"
    frame.to_csv(path, index=False)
    result, _ = ingest_into(tmp_path / "out", path)
    assert (result.rows, result.dropped_rows) == (339, 5)


def write_csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def penguins_variant(tmp_path, penguins_csv, change):
    frame = pd.read_csv(penguins_csv)
    frame = change(frame)
    path = tmp_path / "variant.csv"
    frame.to_csv(path, index=False)
    return path


BAD_INPUTS = {
    "missing_label": (lambda t, p: (p, {"label": "kind"}), "label: no column named 'kind'"),
    "single_class": (lambda t, p: (penguins_variant(t, p, lambda f: f[f.species == "Adelie"]), {}),
                     "has a single class ['Adelie']"),
    "empty_file": (lambda t, p: (write_csv(t, ""), {}), "is empty"),
    "header_only": (lambda t, p: (write_csv(t, "a,b,species\n"), {}), "has a header but no data rows"),
    "duplicate_columns": (lambda t, p: (write_csv(t, "a,a,species\n1,2,x\n"), {}), "duplicate column names"),
    "all_null_column": (lambda t, p: (penguins_variant(t, p, lambda f: f.assign(note=None)), {}),
                        "column 'note': every value is missing. Fix: drop it (drop_columns=['note'])"),
    "text_in_numeric_column": (lambda t, p: (penguins_variant(
        t, p, lambda f: f.astype({"body_mass_g": object}).assign(body_mass_g=lambda g: g.body_mass_g.where(
            g.index != 3, "heavy"))), {}), "column 'body_mass_g': mostly numbers but also holds text values"),
    "validation_fraction_zero": (lambda t, p: (p, {"validation_fraction": 0.0}),
                                 "validation_fraction: 0.0 is outside (0, 1)"),
    "test_fraction_one": (lambda t, p: (p, {"test_fraction": 1.0}), "test_fraction: 1.0 is outside (0, 1)"),
    "fractions_leave_no_training": (lambda t, p: (p, {"validation_fraction": 0.5, "test_fraction": 0.5}),
                                    "validation_fraction, test_fraction: 0.5 + 0.5 leaves no rows for training"),
    "missing_file": (lambda t, p: (t / "nope.csv", {}), "no such file"),
    "unsupported_scheme": (lambda t, p: ("hdfs://namenode/penguins.csv", {}), "unsupported URI scheme 'hdfs'"),
    "unknown_format": (lambda t, p: (write_csv(t, "a,species\n1,x\n", "data.json"), {}),
                       "cannot tell the format"),
    "malformed_csv": (lambda t, p: (write_csv(t, "a,species\n1,x\n2,y,3,4\n"), {}), "is not well-formed CSV"),
    "unknown_drop_column": (lambda t, p: (p, {"drop_columns": ["nope"]}), "drop_columns: ['nope'] are not columns"),
    "label_dropped": (lambda t, p: (p, {"drop_columns": ["species"]}), "the label 'species' cannot be dropped"),
    "identifier_column": (lambda t, p: (penguins_variant(t, p, lambda f: f.assign(tag=[f"id{i}" for i in f.index])),
                                        {}), "look like an identifier"),
    "unknown_tolerance": (lambda t, p: (p, {"max_unknown_fraction": 1.5}), "max_unknown_fraction: 1.5"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_a_clear_message_and_writes_nothing(case, tmp_path, penguins_csv):
    make, expected = BAD_INPUTS[case]
    data_uri, kwargs = make(tmp_path, penguins_csv)
    label = kwargs.pop("label", "species")
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError) as error:
        ingest_into(out, data_uri, label=label, **kwargs)
    assert expected in str(error.value)
    assert "Fix: " in str(error.value)
    assert list(out.iterdir()) == []


GIVEN_SCHEMA_CASES = {
    "unknown_categories_beyond_tolerance": (
        lambda f: f.assign(island=f.island.where(f.index % 10 != 0, "Anvers")),
        "column 'island': 35 values outside the schema domain, e.g. ['Anvers']: 10.2% of rows, more than the 1.0%"),
    "out_of_range_beyond_tolerance": (lambda f: f.assign(body_mass_g=f.body_mass_g * 10),
                                      "values outside the schema range"),
    "missing_schema_column": (lambda f: f.drop(columns=["sex"]), "columns ['sex']: are in the schema but not in"),
    "nulls_in_non_nullable": (lambda f: f.assign(island=f.island.where(f.index != 0, None)),
                              "column 'island': 1 missing values, but the schema says it is never missing"),
    "unknown_label": (lambda f: f.assign(species=f.species.where(f.index != 0, "Emperor")),
                      "values ['Emperor'] are not among the schema classes"),
    "text_in_numeric": (lambda f: f.astype({"year": object}).assign(year=f.year.astype(object).where(
        f.index != 0, "two thousand")), "numeric in the schema but holds 1 non-numeric values"),
}


@pytest.mark.parametrize("case", sorted(GIVEN_SCHEMA_CASES))
def test_data_that_breaks_a_given_schema_is_refused(case, tmp_path, penguins_csv, penguin_splits):
    change, expected = GIVEN_SCHEMA_CASES[case]
    given = Schema.load(penguin_splits[1]["schema.json"])
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="Fix: ") as error:
        ingest_into(out, penguins_variant(tmp_path, penguins_csv, change), given_schema=given)
    assert expected in str(error.value)
    assert list(out.iterdir()) == []


def test_missing_gs_object_is_a_clear_error(tmp_path, bucket):
    with pytest.raises(InvalidInputError, match="no such bucket or object"):
        ingest_into(tmp_path, f"gs://{bucket.name}/missing.csv")


def test_malformed_schema_is_refused():
    with pytest.raises(InvalidInputError, match="malformed schema"):
        Schema.from_dict({"label": "species"})
    with pytest.raises(InvalidInputError, match="schema.features.x.kind: unknown kind 'text'"):
        Schema.from_dict({"label": "y", "classes": ["a", "b"], "features": [{"name": "x", "kind": "text"}]})


AWKWARD = {"bill_length_mm": "Bill Length (mm)", "bill_depth_mm": "bill.depth.mm", "flipper_length_mm": "2nd-flipper",
           "body_mass_g": "Körpermasse [g]", "island": "島", "sex": "class", "year": "Year", "species": "Species Name"}


def test_awkward_headers_keep_their_names_beside_safe_model_input_names(tmp_path, penguins_csv):
    data = penguins_variant(tmp_path, penguins_csv, lambda f: f.rename(columns=AWKWARD))
    result, paths = ingest_into(tmp_path / "out", data, label="Species Name")
    schema = Schema.load(paths["schema.json"])
    assert schema.columns == {"species_name": "Species Name", "bill_length_mm": "Bill Length (mm)",
                              "bill_depth_mm": "bill.depth.mm", "c_2nd_flipper": "2nd-flipper",
                              "korpermasse_g": "Körpermasse [g]", schema.feature("島").name: "島", "class_": "class",
                              "Year": "Year"}
    assert schema.feature("島").name.startswith("c_") and schema.label_column == "Species Name"
    train = pd.read_parquet(paths["train.parquet"])
    assert list(train.columns) == schema.feature_names + ["species_name"]
    report = open(paths["report.md"]).read()
    assert "| Bill Length (mm) | 342 |" in report and "| 島 | 344 | 0 | 3 |" in report
    assert "## Label `Species Name`" in report
    stats = json.loads(open(paths["statistics.json"]).read())
    assert stats["features"]["korpermasse_g"]["column"] == "Körpermasse [g]"


def test_model_input_names_are_stable_and_do_not_collide():
    from kubeline.core.schema import model_input_names

    columns = ["Mean Radius", "mean_radius", "mean radius", "x", "lambda", "Ünïcödé", "Größe"]
    names = model_input_names(columns)
    assert names["mean_radius"] == "mean_radius" and names["x"] == "x"  # usable names are kept
    assert len(set(names.values())) == len(columns)
    assert names["Mean Radius"].startswith("mean_radius_") and names["mean radius"].startswith("mean_radius_")
    assert (names["lambda"], names["Ünïcödé"], names["Größe"]) == ("lambda_", "unicode", "grosse")
    # A column's name does not depend on the order or the company of the others.
    assert model_input_names(list(reversed(columns))) == names
    assert model_input_names(["Mean Radius", "mean_radius"])["Mean Radius"] == names["Mean Radius"]
    assert model_input_names(["Mean Radius"]) == {"Mean Radius": "mean_radius"}


def test_a_schema_refuses_a_name_that_cannot_be_a_model_input_or_is_used_twice():
    from kubeline.core.schema import CATEGORICAL, Feature

    with pytest.raises(InvalidInputError, match="schema name 'year \\(c\\)': cannot be a model input name"):
        Schema("y", ["a", "b"], [Feature("year (c)", CATEGORICAL, domain=["x"])])
    with pytest.raises(InvalidInputError, match="the column 'Size' is used twice"):
        Schema("y", ["a", "b"], [Feature("size", CATEGORICAL, domain=["x"], column="Size"),
                                 Feature("size_2", CATEGORICAL, domain=["x"], column="Size")])
